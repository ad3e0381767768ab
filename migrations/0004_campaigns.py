from tortoise import migrations
from tortoise.migrations import operations as ops
from models.campaigns.campaign import RunStatus
from models.campaigns.rules import CampaignStatus, CampaignType, Category, Channel
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0003_message_presets')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('tags', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('tags_search', fields.TextField(default='', unique=False)),
                ('type', fields.CharEnumField(default=CampaignType.SCHEDULED, description='SCHEDULED: SCHEDULED\nAPI_TRIGGERED: API_TRIGGERED', enum_type=CampaignType, max_length=16)),
                ('category', fields.CharEnumField(default=Category.MARKETING, description='MARKETING: MARKETING\nTRANSACTIONAL: TRANSACTIONAL', enum_type=Category, max_length=16)),
                ('channel', fields.CharEnumField(null=True, description='EMAIL: EMAIL\nSMS: SMS\nPUSH: PUSH\nIN_APP: IN_APP', enum_type=Channel, max_length=16)),
                ('preset', fields.ForeignKeyField('herald.MessagePreset', source_field='preset_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('content', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('tracking', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('segment', fields.ForeignKeyField('herald.Segment', source_field='segment_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('namespace', fields.ForeignKeyField('herald.IdentityNamespace', source_field='namespace_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('schedule', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('throttle_per_second', fields.IntField(null=True)),
                ('status', fields.CharEnumField(default=CampaignStatus.DRAFT, description='DRAFT: DRAFT\nSCHEDULED: SCHEDULED\nLIVE: LIVE\nSTOPPED: STOPPED\nCOMPLETED: COMPLETED\nFAILED: FAILED\nARCHIVED: ARCHIVED', enum_type=CampaignStatus, max_length=16)),
                ('version', fields.IntField(default=1)),
                ('activated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('activated_by', fields.CharField(null=True, max_length=100)),
                ('stopped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('stopped_by', fields.CharField(null=True, max_length=100)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failure_reason', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'campaign', 'app': 'herald', 'indexes': [Index(fields=['sandbox_id', 'status', 'id']), Index(fields=['sandbox_id', 'updated_at']), Index(fields=['preset_id']), Index(fields=['segment_id'])], 'pk_attr': 'id'},
            bases=['SandboxModel'],
        ),
        ops.CreateModel(
            name='CampaignRun',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('campaign', fields.ForeignKeyField('herald.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('scheduled_for', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=RunStatus.PENDING, description='PENDING: PENDING\nRUNNING: RUNNING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED\nCANCELLED: CANCELLED', enum_type=RunStatus, max_length=16)),
                ('targeted', fields.IntField(default=0)),
                ('excluded', fields.IntField(default=0)),
                ('sent', fields.IntField(default=0)),
                ('delivered', fields.IntField(default=0)),
                ('failed', fields.IntField(default=0)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failure_reason', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'campaign_run', 'app': 'herald', 'unique_together': (('campaign_id', 'scheduled_for'),), 'indexes': [Index(fields=['status', 'scheduled_for'])], 'pk_attr': 'id', 'table_description': 'One execution of a campaign at one scheduled time, unique per (campaign, scheduled_for).'},
            bases=['Model'],
        ),
    ]
