from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("herald", "0007_tracking")]

    initial = False

    operations = [
        ops.CreateModel(
            name="OutboxEvent",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "sandbox",
                    fields.ForeignKeyField(
                        "herald.Sandbox",
                        source_field="sandbox_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("topic", fields.CharField(max_length=64)),
                ("payload", fields.JSONField()),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("published_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "outbox_event",
                "app": "herald",
                "indexes": [Index(fields=["published_at", "id"])],
                "pk_attr": "id",
                "table_description": "An event written with its change: the relay publishes it to Redis in id order, then sets published_at.",
            },
            bases=["Model"],
        ),
    ]
