from tortoise import migrations
from tortoise.migrations import operations as ops
from models.tenancy.identity import IdentityType
from models.tenancy.sandbox import Role
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Sandbox',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'sandbox', 'app': 'herald', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=100)),
                ('role', fields.CharEnumField(description='VIEWER: VIEWER\nMANAGER: MANAGER\nPUBLISHER: PUBLISHER\nADMIN: ADMIN', enum_type=Role, max_length=16)),
                ('display_prefix', fields.CharField(max_length=16)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_key', 'app': 'herald', 'pk_attr': 'id', 'table_description': 'An API key, bound to one sandbox and one role. Only its SHA-256 is stored.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('actor', fields.CharField(max_length=100)),
                ('action', fields.CharField(max_length=50)),
                ('object_type', fields.CharField(max_length=50)),
                ('object_id', fields.CharField(max_length=50)),
                ('before', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('after', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_event', 'app': 'herald', 'indexes': [Index(fields=['sandbox_id', 'object_type', 'object_id'])], 'pk_attr': 'id', 'table_description': 'Who changed what, when, with the state before and after.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdentityNamespace',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('code', fields.CharField(max_length=50)),
                ('name', fields.CharField(max_length=100)),
                ('type', fields.CharEnumField(description='EMAIL: EMAIL\nPHONE: PHONE\nCOOKIE: COOKIE\nDEVICE: DEVICE\nCROSS_DEVICE: CROSS_DEVICE\nPARTNER: PARTNER\nNON_PEOPLE: NON_PEOPLE', enum_type=IdentityType, max_length=16)),
                ('description', fields.TextField(default='', unique=False)),
                ('standard', fields.BooleanField(default=False)),
            ],
            options={'table': 'identity_namespace', 'app': 'herald', 'unique_together': (('sandbox', 'code'),), 'pk_attr': 'id'},
            bases=['SandboxModel'],
        ),
    ]
