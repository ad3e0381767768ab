from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('herald', '0013_triggers')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BusinessRuleSet',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sandbox', fields.ForeignKeyField('herald.Sandbox', source_field='sandbox_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('rules', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('default_time_zone', fields.CharField(default='UTC', max_length=64)),
                ('is_default', fields.BooleanField(default=False)),
                ('version', fields.IntField(default=1)),
            ],
            options={'table': 'business_rule_set', 'app': 'herald', 'unique_together': (('sandbox_id', 'name'),), 'pk_attr': 'id', 'table_description': 'Caps and quiet hours for the campaigns naming it, or for MARKETING campaigns naming none if default.'},
            bases=['SandboxModel'],
        ),
        ops.AddField(
            model_name='Campaign',
            name='business_rule_set',
            field=fields.ForeignKeyField('herald.BusinessRuleSet', source_field='business_rule_set_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='Campaign',
            name='priority',
            field=fields.IntField(default=50, db_default=50),
        ),
        ops.AddField(
            model_name='Delivery',
            name='cleared_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='Delivery',
            index=Index(fields=['profile_id', 'status']),
        ),
    ]
