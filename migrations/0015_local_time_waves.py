from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('herald', '0014_business_rules')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Campaign',
            name='waves',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='CampaignRun',
            name='starts_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='CampaignRun',
            name='wave',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Delivery',
            name='wave',
            field=fields.SmallIntField(null=True),
        ),
    ]
