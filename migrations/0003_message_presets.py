from tortoise import migrations
from tortoise.migrations import operations as ops
from models.presets.rules import Channel, PresetCategory, PresetStatus, PresetUpdateStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0002_audience')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MessagePreset',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('name', fields.CharField(max_length=100)),
                ('description', fields.TextField(default='', unique=False)),
                ('channel', fields.CharEnumField(description='EMAIL: EMAIL\nSMS: SMS\nPUSH: PUSH\nIN_APP: IN_APP', enum_type=Channel, max_length=16)),
                ('category', fields.CharEnumField(description='MARKETING: MARKETING\nTRANSACTIONAL: TRANSACTIONAL', enum_type=PresetCategory, max_length=16)),
                ('status', fields.CharEnumField(default=PresetStatus.DRAFT, description='DRAFT: DRAFT\nPROCESSING: PROCESSING\nACTIVE: ACTIVE\nFAILED: FAILED\nDEACTIVATED: DEACTIVATED', enum_type=PresetStatus, max_length=16)),
                ('settings', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('secrets', fields.TextField(null=True, unique=False)),
                ('secret_names', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('pending_settings', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('pending_secrets', fields.TextField(null=True, unique=False)),
                ('pending_secret_names', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('update_status', fields.CharEnumField(null=True, description='PROCESSING: PROCESSING\nFAILED: FAILED', enum_type=PresetUpdateStatus, max_length=16)),
                ('checks', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('validated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('version', fields.IntField(default=1)),
            ],
            options={'table': 'message_preset', 'app': 'herald', 'unique_together': (('sandbox_id', 'name'),), 'indexes': [Index(fields=['sandbox_id', 'channel', 'status'])], 'pk_attr': 'id'},
            bases=['SandboxModel'],
        ),
    ]
