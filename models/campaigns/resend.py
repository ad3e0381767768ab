"""Re-sending the failed deliveries of a finished run (`campaignRunResendFailed`).

Only failures that a later attempt can cure are re-sent: the retry period ran out (RETRY_EXPIRED), or the
provider was unreachable, slow, rate-limiting or answered a temporary error (SMTP 4xx, HTTP 5xx). Hard
bounces, refused content or senders, bad addresses, template errors and exclusions (suppressed, no
consent, …) are final: sending them again would fail the same way or break a rule.

The rows go back to QUEUED (attempts reset, no lease, no next attempt) and the run back to RUNNING with no
lease, so the run executor resumes it without a new audience snapshot and sends exactly those rows. The
retry window of the run is not reopened: a resent message that meets a temporary failure again is marked
RETRY_EXPIRED at once rather than kept waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.rules import CampaignStatus
from models.campaigns.transitions import reopen_run
from models.ledger.delivery import ExclusionReason
from models.ledger.outcomes import requeue_failed

# Reasons of FAILED deliveries worth another attempt: ExclusionReason.RETRY_EXPIRED and the RETRY codes of
# jobs.channels.base.FailureCode (spelled out here: models import nothing from jobs).
RETRYABLE_REASONS = frozenset({ExclusionReason.RETRY_EXPIRED.value, "CONNECTION", "TIMEOUT", "THROTTLED", "TEMPORARY"})
RESENDABLE_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})
# A STOPPED or ARCHIVED campaign was ended on purpose: nothing of it is sent again.
CLOSED_CAMPAIGN_STATUSES = frozenset({CampaignStatus.STOPPED, CampaignStatus.ARCHIVED, CampaignStatus.DRAFT})


class ResendError(Exception):
    pass


class RunNotFound(ResendError):
    pass


class RunNotResendable(ResendError):
    def __init__(self, message: str, current_status: str) -> None:
        super().__init__(message)
        self.current_status = current_status


class NothingToResend(ResendError):
    pass


async def resend_failed(
    sandbox_id: int, run_id: int, *, actor: str, now: datetime | None = None
) -> tuple[CampaignRun, int]:
    """Moves the run's retryable FAILED deliveries back to QUEUED and the run to RUNNING, in one transaction.

    Returns the run and how many deliveries will be re-sent; the caller enqueues the run job after commit.
    """
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        run = await CampaignRun.filter(id=run_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
        if run is None:
            raise RunNotFound(f"no campaign run with id {run_id} in this sandbox")
        campaign = await Campaign.filter(id=run.campaign_id).select_for_update().using_db(conn).get()
        if campaign.status in CLOSED_CAMPAIGN_STATUSES:
            raise RunNotResendable(
                f"the campaign is {campaign.status.value}: nothing of it is sent again", campaign.status.value
            )
        if run.status not in RESENDABLE_RUN_STATUSES:
            raise RunNotResendable(
                f"only a SUCCEEDED or FAILED run can re-send its failures; this one is {run.status.value}",
                run.status.value,
            )
        requeued = await requeue_failed(run.id, sorted(RETRYABLE_REASONS), now, conn)
        if requeued == 0:
            raise NothingToResend("the run has no failed delivery whose reason is worth another attempt")
        # Compare-and-set on the status read: of two concurrent resends (or a resend racing a resume), one wins;
        # raising rolls the deliveries back with it.
        if not await reopen_run(conn, run, actor=actor, now=now, requeued=requeued):
            raise RunNotResendable("the run changed meanwhile; read it again", run.status.value)
    return run, requeued
