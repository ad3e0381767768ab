from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    # Numbered 0013 to leave room for branches landing beside it; it only needs the outbox.
    dependencies = [("herald", "0010_run_counters")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Delivery",
            name="relay_id",
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["relay_id"]),
        ),
    ]
