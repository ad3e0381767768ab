from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0019_run_pause')]

    initial = False

    operations = [
        ops.AddField(
            model_name='WebhookEndpoint',
            name='rate_tokens',
            field=fields.FloatField(null=True),
        ),
        ops.AddField(
            model_name='WebhookEndpoint',
            name='rate_tokens_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
