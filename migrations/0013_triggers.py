from tortoise import migrations
from tortoise.migrations import operations as ops
from models.triggers.trigger import TriggerStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0012_webhooks')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CampaignTrigger',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('campaign', fields.ForeignKeyField('herald.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('run', fields.ForeignKeyField('herald.CampaignRun', source_field='run_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('idempotency_key', fields.CharField(null=True, max_length=255)),
                ('released_key', fields.CharField(null=True, max_length=255)),
                ('request_hash', fields.CharField(max_length=64)),
                ('status', fields.CharEnumField(description='ACCEPTED: ACCEPTED\nREJECTED: REJECTED', enum_type=TriggerStatus, max_length=16)),
                ('accepted', fields.IntField(default=0)),
                ('rejected', fields.IntField(default=0)),
                ('context', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('answer', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'campaign_trigger', 'app': 'herald', 'unique_together': (('campaign_id', 'idempotency_key'),), 'indexes': [Index(fields=['campaign_id', 'id']), Index(fields=['run_id'])], 'pk_attr': 'id', 'table_description': 'One accepted call of campaignTrigger (GraphQL) or POST /campaigns/{id}/triggers (REST).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Campaign',
            name='trigger_context_sample',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Delivery',
            name='context',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Delivery',
            name='trigger_id',
            field=fields.BigIntField(null=True),
        ),
    ]
