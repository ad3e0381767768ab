from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Counters with one meaning (models.ledger.figures): sent now counts bounces too, delivered is SENT or
# DELIVERED, pending and retrying are stored. Existing runs are recounted from their ledger rows.
_RECOUNT = (
    "UPDATE campaign_run SET "
    "sent = (SELECT COUNT(*) FROM delivery d WHERE d.run_id = campaign_run.id AND (d.status IN "
    "('SENT', 'DELIVERED', 'BOUNCED') OR (d.status = 'FAILED' AND d.reason = 'HARD_BOUNCE'))), "
    "delivered = (SELECT COUNT(*) FROM delivery d WHERE d.run_id = campaign_run.id "
    "AND d.status IN ('SENT', 'DELIVERED')), "
    "failed = (SELECT COUNT(*) FROM delivery d WHERE d.run_id = campaign_run.id "
    "AND d.status IN ('FAILED', 'BOUNCED')), "
    "pending = (SELECT COUNT(*) FROM delivery d WHERE d.run_id = campaign_run.id "
    "AND d.status IN ('TARGETED', 'QUEUED', 'SENDING')), "
    "retrying = (SELECT COUNT(*) FROM delivery d WHERE d.run_id = campaign_run.id "
    "AND d.status = 'QUEUED' AND d.reason IS NOT NULL)"
)


class Migration(migrations.Migration):
    dependencies = [("herald", "0009_run_steps")]

    initial = False

    operations = [
        ops.AddField(model_name="CampaignRun", name="pending", field=fields.IntField(default=0, db_default=0)),
        ops.AddField(model_name="CampaignRun", name="retrying", field=fields.IntField(default=0, db_default=0)),
        ops.AddField(
            model_name="CampaignRun", name="last_error_reason", field=fields.CharField(null=True, max_length=32)
        ),
        ops.AddField(model_name="CampaignRun", name="last_error_count", field=fields.IntField(default=0, db_default=0)),
        ops.RunSQL(_RECOUNT, reverse_sql=ops.RunSQL.noop),
    ]
