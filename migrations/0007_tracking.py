from tortoise import migrations
from tortoise.migrations import operations as ops
from models.reporting.tracking import TrackingEventKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("herald", "0006_execution")]

    initial = False

    operations = [
        ops.CreateModel(
            name="TrackedLink",
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
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "run",
                    fields.ForeignKeyField(
                        "herald.CampaignRun",
                        source_field="run_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("campaign_id", fields.BigIntField()),
                ("url_hash", fields.CharField(max_length=64)),
                ("url", fields.TextField(unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "tracked_link",
                "app": "herald",
                "unique_together": (("run_id", "url_hash"),),
                "pk_attr": "id",
                "table_description": "A link of a run's messages as rendered: a click token names one, and redirects only to its URL.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="TrackingEvent",
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
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("campaign_id", fields.BigIntField()),
                ("run_id", fields.BigIntField()),
                ("delivery_id", fields.BigIntField()),
                ("profile_id", fields.BigIntField()),
                (
                    "kind",
                    fields.CharEnumField(
                        description="OPEN: OPEN\nCLICK: CLICK\nUNSUBSCRIBE: UNSUBSCRIBE\nCOMPLAINT: COMPLAINT",
                        enum_type=TrackingEventKind,
                        max_length=16,
                    ),
                ),
                ("link_id", fields.BigIntField(null=True)),
                ("user_agent", fields.CharField(null=True, max_length=512)),
                ("dedupe_key", fields.CharField(null=True, unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "tracking_event",
                "app": "herald",
                "indexes": [
                    Index(fields=["campaign_id", "kind", "created_at"]),
                    Index(fields=["run_id", "kind"]),
                    Index(fields=["delivery_id"]),
                ],
                "pk_attr": "id",
                "table_description": "One OPEN, CLICK, UNSUBSCRIBE or COMPLAINT of one delivery.",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Delivery",
            name="bounce_type",
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name="Delivery",
            name="delivered_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["campaign_id", "status"]),
        ),
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["provider_message_id"]),
        ),
    ]
