from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0021_version_approvals')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Sandbox',
            name='time_zone',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
