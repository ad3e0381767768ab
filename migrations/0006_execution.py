from tortoise import migrations
from tortoise.migrations import operations as ops
from models.ledger.delivery import DeliveryStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0005_profile_import')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('run', fields.ForeignKeyField('herald.CampaignRun', source_field='run_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('campaign_id', fields.BigIntField()),
                ('profile', fields.ForeignKeyField('herald.Profile', source_field='profile_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(description='TARGETED: TARGETED\nEXCLUDED: EXCLUDED\nQUEUED: QUEUED\nSENDING: SENDING\nSENT: SENT\nDELIVERED: DELIVERED\nBOUNCED: BOUNCED\nFAILED: FAILED\nCANCELLED: CANCELLED', enum_type=DeliveryStatus, max_length=16)),
                ('reason', fields.CharField(null=True, max_length=32)),
                ('address', fields.CharField(null=True, max_length=512)),
                ('idempotency_key', fields.CharField(unique=True, max_length=64)),
                ('attempts', fields.IntField(default=0)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('provider_message_id', fields.CharField(null=True, max_length=255)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'delivery', 'app': 'herald', 'unique_together': (('run_id', 'profile_id'),), 'indexes': [Index(fields=['run_id', 'status'])], 'pk_attr': 'id', 'table_description': 'One message of one run to one profile. Written and read in bulk with SQL by the run executor.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InboxMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('idempotency_key', fields.CharField(unique=True, max_length=64)),
                ('namespace', fields.CharField(max_length=50)),
                ('identity', fields.CharField(max_length=512)),
                ('campaign_id', fields.BigIntField(null=True)),
                ('title', fields.TextField(unique=False)),
                ('body', fields.TextField(unique=False)),
                ('data', fields.TextField(default='{}', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inbox_message', 'app': 'herald', 'indexes': [Index(fields=['sandbox_id', 'namespace', 'identity', 'id'])], 'pk_attr': 'id', 'table_description': 'An in-app message in the inbox of one identity, written by the run executor.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CampaignRun',
            name='lease_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
