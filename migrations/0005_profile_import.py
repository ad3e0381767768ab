from tortoise import migrations
from tortoise.migrations import operations as ops
from models.audience.import_format import ImportFormat
from models.audience.imports import ImportStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0004_campaigns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ProfileImport',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('status', fields.CharEnumField(default=ImportStatus.PENDING, description='PENDING: PENDING\nRUNNING: RUNNING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED', enum_type=ImportStatus, max_length=16)),
                ('format', fields.CharEnumField(description='CSV: CSV\nNDJSON: NDJSON', enum_type=ImportFormat, max_length=8)),
                ('file_name', fields.CharField(max_length=255)),
                ('stored_name', fields.CharField(max_length=100)),
                ('size_bytes', fields.BigIntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('actor', fields.CharField(max_length=100)),
                ('rows_read', fields.BigIntField(default=0)),
                ('profiles_created', fields.BigIntField(default=0)),
                ('profiles_updated', fields.BigIntField(default=0)),
                ('profiles_unchanged', fields.BigIntField(default=0)),
                ('rows_rejected', fields.BigIntField(default=0)),
                ('rejected_rows', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('resume_offset', fields.BigIntField(default=0)),
                ('resume_line', fields.BigIntField(default=0)),
                ('error', fields.TextField(null=True, unique=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'profile_import', 'app': 'herald', 'indexes': [Index(fields=['sandbox_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A bulk import of profiles from an uploaded CSV or NDJSON file, with its progress and rejected rows.'},
            bases=['SandboxModel'],
        ),
    ]
