from tortoise import migrations
from tortoise.migrations import operations as ops
from models.campaigns.version_rules import VersionState
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0017_people_approvals')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CampaignVersion',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('campaign', fields.ForeignKeyField('herald.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('state', fields.CharEnumField(description='DRAFT: DRAFT\nPUBLISHED: PUBLISHED\nSUPERSEDED: SUPERSEDED\nDISCARDED: DISCARDED', enum_type=VersionState, max_length=16)),
                ('values', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('based_on', fields.IntField(null=True)),
                ('restores', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(max_length=100)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('published_by', fields.CharField(null=True, max_length=100)),
            ],
            options={'table': 'campaign_version', 'app': 'herald', 'unique_together': (('campaign_id', 'number'),), 'indexes': [Index(fields=['campaign_id', 'state'])], 'pk_attr': 'id', 'table_description': "A numbered copy of a campaign's message-defining fields (models.campaigns.version_rules)."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CampaignRun',
            name='campaign_version',
            field=fields.IntField(null=True),
        ),
    ]
