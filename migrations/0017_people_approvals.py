from tortoise import migrations
from tortoise.migrations import operations as ops
from models.approvals.model import ApprovalDecisionKind
from models.campaigns.rules import CampaignStatus
from models.tenancy.sandbox import Role
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class AlterFieldStateOnly(ops.AlterField):
    """The model state learns the new value, the database is left alone. Campaign.status only gains IN_REVIEW and
    APPROVED, which changes the field's description (a column comment) and nothing stored: on SQLite Tortoise
    would rebuild the campaign table for it, and the rebuild drops the table's indexes."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [('herald', '0016_experiments')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ApprovalPolicy',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('name', fields.CharField(max_length=100)),
                ('enabled', fields.BooleanField(default=True)),
                ('channels', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('categories', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('audience_above', fields.IntField(null=True)),
                ('requester_roles', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('approver_roles', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('approver_user_ids', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('required_approvals', fields.IntField(default=1)),
            ],
            options={'table': 'approval_policy', 'app': 'herald', 'indexes': [Index(fields=['sandbox_id', 'id'])], 'pk_attr': 'id', 'table_description': 'Conditions (an empty list or null matches anything) and who approves. Lists are JSON arrays of names.'},
            bases=['SandboxModel'],
        ),
        ops.CreateModel(
            name='CampaignApproval',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('campaign', fields.ForeignKeyField('herald.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('request_id', fields.BigIntField(null=True)),
                ('kind', fields.CharEnumField(description='REQUESTED: REQUESTED\nAPPROVED: APPROVED\nCHANGES_REQUESTED: CHANGES_REQUESTED', enum_type=ApprovalDecisionKind, max_length=20)),
                ('actor', fields.CharField(max_length=100)),
                ('actor_role', fields.CharField(max_length=16)),
                ('user_id', fields.BigIntField(null=True)),
                ('version', fields.IntField()),
                ('comment', fields.TextField(default='', unique=False)),
                ('policy_ids', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'campaign_approval', 'app': 'herald', 'indexes': [Index(fields=['campaign_id', 'id'])], 'pk_attr': 'id', 'table_description': "One step of a campaign's approval: the request (with the policies it matched) and each decision on it,"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sub', fields.CharField(unique=True, max_length=255)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('name', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_seen_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'app_user', 'app': 'herald', 'pk_attr': 'id', 'table_description': 'A person known by the `sub` claim of the identity provider. Email and name are copied from the latest token.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Membership',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('user', fields.ForeignKeyField('herald.User', source_field='user_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('role', fields.CharEnumField(description='VIEWER: VIEWER\nMANAGER: MANAGER\nPUBLISHER: PUBLISHER\nADMIN: ADMIN', enum_type=Role, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'membership', 'app': 'herald', 'unique_together': (('user_id', 'sandbox_id'),), 'indexes': [Index(fields=['sandbox_id', 'id'])], 'pk_attr': 'id', 'table_description': "A user's role in one sandbox (the same roles as API keys), unique per user and sandbox."},
            bases=['Model'],
        ),
        AlterFieldStateOnly(
            model_name='Campaign',
            name='status',
            field=fields.CharEnumField(default=CampaignStatus.DRAFT, description='DRAFT: DRAFT\nIN_REVIEW: IN_REVIEW\nAPPROVED: APPROVED\nSCHEDULED: SCHEDULED\nLIVE: LIVE\nSTOPPED: STOPPED\nCOMPLETED: COMPLETED\nFAILED: FAILED\nARCHIVED: ARCHIVED', enum_type=CampaignStatus, max_length=16),
        ),
    ]
