from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from models.campaigns.run_rules import RunOutcomeReason


class Migration(migrations.Migration):
    dependencies = [("herald", "0008_outbox")]

    initial = False

    operations = [
        ops.AddField(
            model_name="CampaignRun",
            name="outcome_reason",
            field=fields.CharEnumField(
                null=True,
                description="AUDIENCE_EMPTY: AUDIENCE_EMPTY",
                enum_type=RunOutcomeReason,
                max_length=32,
            ),
        ),
        ops.AddField(
            model_name="CampaignRun",
            name="snapshot_done_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        # Runs from before this step was recorded: their snapshot is done if it wrote rows or the run ended.
        # A RUNNING run with an empty ledger stays unrecorded, so its resume takes the snapshot again.
        ops.RunSQL(
            "UPDATE campaign_run SET snapshot_done_at = COALESCE(started_at, created_at) "
            "WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED') "
            "OR EXISTS (SELECT 1 FROM delivery d WHERE d.run_id = campaign_run.id)"
        ),
    ]
