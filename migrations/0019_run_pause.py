from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from models.campaigns.run_rules import RunPauseReason, RunStatus
from models.ledger.vocabulary import DeliveryStatus


class AlterEnumDescription(ops.AlterField):
    """A new value of a CharEnumField whose column stays VARCHAR(16): only the migration state changes. The
    database is left alone, since AlterField on SQLite rebuilds the table and drops its indexes (STACK-NOTES)."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [("herald", "0018_campaign_versions")]

    initial = False

    operations = [
        AlterEnumDescription(
            model_name="CampaignRun",
            name="status",
            field=fields.CharEnumField(
                default=RunStatus.PENDING,
                description="PENDING: PENDING\nRUNNING: RUNNING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED\n"
                "CANCELLED: CANCELLED\nPAUSED: PAUSED",
                enum_type=RunStatus,
                max_length=16,
            ),
        ),
        # SMS sends with no answer are held UNCONFIRMED (issue 24): a new value, the column unchanged.
        AlterEnumDescription(
            model_name="Delivery",
            name="status",
            field=fields.CharEnumField(
                description="TARGETED: TARGETED\nEXCLUDED: EXCLUDED\nQUEUED: QUEUED\nSENDING: SENDING\nSENT: SENT\n"
                "DELIVERED: DELIVERED\nBOUNCED: BOUNCED\nFAILED: FAILED\nCANCELLED: CANCELLED\n"
                "UNCONFIRMED: UNCONFIRMED",
                enum_type=DeliveryStatus,
                max_length=16,
            ),
        ),
        ops.AddField(
            model_name="CampaignRun",
            name="pause_detail",
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name="CampaignRun",
            name="pause_reason",
            field=fields.CharEnumField(
                null=True,
                description="CREDENTIALS_REFUSED: CREDENTIALS_REFUSED\nPROVIDER_CONFIGURATION: PROVIDER_CONFIGURATION\n"
                "SENDER_REFUSED: SENDER_REFUSED",
                enum_type=RunPauseReason,
                max_length=32,
            ),
        ),
        ops.AddField(
            model_name="CampaignRun",
            name="paused_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
