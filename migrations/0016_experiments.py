from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0015_local_time_waves')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Campaign',
            name='experiment',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Delivery',
            name='treatment',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
