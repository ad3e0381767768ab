from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Issue 17, throughput: an API campaign's triggers share one long-lived run (one per activation, unique by the
# existing (campaign_id, scheduled_for) index with scheduled_for = activated_at), so acceptance writes nothing on
# the run row. A profile may then have several rows in one run (one per trigger naming it): the ledger's
# uniqueness is its idempotency key alone ("<run>-<profile>" for a snapshot's rows, "t<trigger>-<profile>" for a
# trigger's), and (run_id, profile_id) becomes a plain index. A trigger's counts are kept on its own row,
# recounted per sent batch; its rows are found by trigger_id.


def _count(where: str) -> str:
    return f"(SELECT COUNT(*) FROM delivery d WHERE d.trigger_id = campaign_trigger.id AND ({where}))"


# Existing triggers' counts from their rows (as models/triggers/progress.py recounts them), so that
# campaignTriggerStatus reads the same figures for them as for new ones.
_RECOUNT = (
    "UPDATE campaign_trigger SET "
    "sent = "
    + _count("d.status IN ('SENT', 'DELIVERED', 'BOUNCED') OR (d.status = 'FAILED' AND d.reason = 'HARD_BOUNCE')")
    + ", "
    "failed = " + _count("d.status IN ('FAILED', 'BOUNCED')") + ", "
    "excluded = " + _count("d.status = 'EXCLUDED'") + ", "
    "pending = " + _count("d.status IN ('TARGETED', 'QUEUED', 'SENDING', 'UNCONFIRMED')") + " "
    "WHERE run_id IS NOT NULL"
)


class _DropRunProfileUnique(ops.RemoveConstraint):
    """SQLite made the constraint part of CREATE TABLE (an index that cannot be dropped): the table is rebuilt
    from the new state there, and the rebuild drops the table's indexes (STACK-NOTES), so they are made again.
    PostgreSQL drops the constraint."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:  # type: ignore[no-untyped-def]
        if state_editor is not None and state_editor.DIALECT == "sqlite":
            model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
            await state_editor._remake_table(model)
            for index in model._meta.indexes:
                await state_editor.add_index(model, index)
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [("herald", "0023_resent")]

    initial = False

    operations = [
        ops.AddField(
            model_name="CampaignRun",
            name="open_for_triggers",
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(model_name="CampaignTrigger", name="sent", field=fields.IntField(default=0, db_default=0)),
        ops.AddField(model_name="CampaignTrigger", name="failed", field=fields.IntField(default=0, db_default=0)),
        ops.AddField(model_name="CampaignTrigger", name="excluded", field=fields.IntField(default=0, db_default=0)),
        ops.AddField(model_name="CampaignTrigger", name="pending", field=fields.IntField(default=0, db_default=0)),
        _DropRunProfileUnique(model_name="Delivery", fields=["run_id", "profile_id"]),
        # Its two `delivery` indexes are built by 0025, outside a transaction (CONCURRENTLY on PostgreSQL).
        ops.RunSQL(_RECOUNT, reverse_sql=ops.RunSQL.noop),
    ]
