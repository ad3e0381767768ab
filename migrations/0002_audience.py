from tortoise import migrations
from tortoise.migrations import operations as ops
from models.audience.entities import Consent, ContactChannel, SegmentKind, SuppressionReason
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Profile',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('attributes', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('consent_email', fields.CharEnumField(default=Consent.UNKNOWN, description='Y: y\nN: n\nUNKNOWN: unknown', enum_type=Consent, max_length=8)),
                ('consent_sms', fields.CharEnumField(default=Consent.UNKNOWN, description='Y: y\nN: n\nUNKNOWN: unknown', enum_type=Consent, max_length=8)),
                ('consent_push', fields.CharEnumField(default=Consent.UNKNOWN, description='Y: y\nN: n\nUNKNOWN: unknown', enum_type=Consent, max_length=8)),
                ('time_zone', fields.CharField(null=True, max_length=64)),
                ('test_profile', fields.BooleanField(default=False)),
            ],
            options={'table': 'profile', 'app': 'herald', 'indexes': [Index(fields=['sandbox_id', 'test_profile'])], 'pk_attr': 'id'},
            bases=['SandboxModel'],
        ),
        ops.CreateModel(
            name='ProfileIdentity',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('profile', fields.ForeignKeyField('herald.Profile', source_field='profile_id', db_constraint=True, to_field='id', related_name='identities', on_delete=OnDelete.CASCADE)),
                ('namespace', fields.ForeignKeyField('herald.IdentityNamespace', source_field='namespace_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('value', fields.CharField(max_length=512)),
            ],
            options={'table': 'profile_identity', 'app': 'herald', 'unique_together': (('sandbox_id', 'namespace_id', 'value'),), 'indexes': [Index(fields=['profile_id', 'namespace_id'])], 'pk_attr': 'id', 'table_description': 'One identity (namespace + normalised value) of a profile, unique per sandbox.'},
            bases=['SandboxModel'],
        ),
        ops.CreateModel(
            name='Segment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('name', fields.CharField(max_length=100)),
                ('description', fields.TextField(default='', unique=False)),
                ('kind', fields.CharEnumField(description='RULE: RULE\nSTATIC: STATIC', enum_type=SegmentKind, max_length=8)),
                ('definition', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
            ],
            options={'table': 'segment', 'app': 'herald', 'unique_together': (('sandbox_id', 'name'),), 'pk_attr': 'id'},
            bases=['SandboxModel'],
        ),
        ops.CreateModel(
            name='SegmentMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('segment', fields.ForeignKeyField('herald.Segment', source_field='segment_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('profile', fields.ForeignKeyField('herald.Profile', source_field='profile_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'segment_member', 'app': 'herald', 'unique_together': (('segment_id', 'profile_id'),), 'indexes': [Index(fields=['profile_id'])], 'pk_attr': 'id', 'table_description': 'A profile listed in a STATIC segment.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SuppressionEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('address', fields.CharField(max_length=512)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nPUSH: PUSH', enum_type=ContactChannel, max_length=8)),
                ('reason', fields.CharEnumField(description='HARD_BOUNCE: HARD_BOUNCE\nSPAM_COMPLAINT: SPAM_COMPLAINT\nUNSUBSCRIBE: UNSUBSCRIBE\nMANUAL: MANUAL', enum_type=SuppressionReason, max_length=16)),
            ],
            options={'table': 'suppression_entry', 'app': 'herald', 'unique_together': (('sandbox_id', 'channel', 'address'),), 'pk_attr': 'id', 'table_description': 'An address that must not be contacted on a channel, with why and since when (`created_at`).'},
            bases=['SandboxModel'],
        ),
    ]
