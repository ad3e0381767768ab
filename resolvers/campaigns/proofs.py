"""`campaignSendProof`: a DRAFT campaign's message (or any version of an activated one's) sent now to at most ten
test profiles or addresses.

The send runs as a job on a worker (jobs/proofs.py) and this mutation waits for its result, up to
PROOF_DEADLINE_SECONDS. Why a job: resolvers reach `jobs` only through the queue (DESIGN §1), the workers own
the SMTP pools and provider clients, and a slow provider then holds a worker slot rather than an API process's
event loop. Why wait: the author asked for it now and wants each recipient's outcome in the answer; a proof
that outlives the deadline still completes and is recorded in `auditEvents` (action SEND_PROOF).
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated, Any

import strawberry

from models.audience.entities import Profile as ProfileModel
from models.audience.values import ValueProblem, normalize_identity
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.rules import CampaignStatus, Channel, available_actions
from models.campaigns.versions import version_campaign
from models.presets.preset import MessagePreset
from models.presets.rules import PresetStatus
from models.tenancy.identity import IdentityType
from resolvers.campaigns.refusals import campaign_not_found, campaign_pk
from resolvers.campaigns.types import Campaign
from resolvers.context import Info
from resolvers.errors import Error, FieldError, InvalidInputError, InvalidStateError, NotFoundError
from resolvers.nodes import pk_of
from resolvers.permissions import MANAGER
from resolvers.vocabulary import INPUT_ARG, described_enum

MAX_PROOF_RECIPIENTS = 10
PROOF_DEADLINE_SECONDS = 30.0
ADDRESS_TYPE = {Channel.EMAIL: IdentityType.EMAIL, Channel.SMS: IdentityType.PHONE}


@strawberry.input(description="Send a proof: give either test profiles or raw addresses (at most 10 in all).")
class CampaignSendProofInput:
    id: strawberry.ID = strawberry.field(description="Global id of a DRAFT campaign whose preset is ACTIVE.")
    test_profile_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Test profiles (testProfile = true) to render with and send to."
    )
    addresses: list[str] | None = strawberry.field(
        default=None,
        description="Raw addresses of the campaign's channel (email, E.164 phone, push token, in-app identity); "
        "rendered with the sandbox's first test profile, or an empty profile when there is none.",
    )
    treatment: str | None = strawberry.field(
        default=None,
        description="A campaign with a content experiment: the key of the treatment to send (default: the "
        "control, its first treatment).",
    )
    version: int | None = strawberry.field(
        default=None,
        description="Send this version of an activated campaign (`CampaignVersion.number`, e.g. its draft) "
        "instead of a DRAFT campaign's message.",
    )


@described_enum(description="What happened to one proof.")
class ProofStatus(Enum):
    SENT = "SENT"
    FAILED = "FAILED"


@strawberry.type(description="The outcome of one proof recipient.")
class ProofOutcome:
    recipient: str = strawberry.field(description="The address sent to (or the profile, when it has none).")
    status: ProofStatus = strawberry.field(description="SENT or FAILED.")
    message: str = strawberry.field(description="The provider's message id when sent, or why it failed.")
    profile_id: strawberry.ID | None = strawberry.field(description="The test profile, when one was given.")


@strawberry.type(description="The proofs were sent (each recipient has its own outcome).")
class CampaignSendProofSuccess:
    campaign: Campaign = strawberry.field(description="The campaign, unchanged.")
    outcomes: list[ProofOutcome] = strawberry.field(description="One per recipient, in the order given.")


@strawberry.type(description="The proof did not finish in time; it may still be sent (see auditEvents).")
class ProofTimeoutError(Error):
    pass


CampaignSendProofResult = Annotated[
    CampaignSendProofSuccess | InvalidInputError | NotFoundError | InvalidStateError | ProofTimeoutError,
    strawberry.union("CampaignSendProofResult", description="Result of `campaignSendProof`."),
]


def _invalid(*errors: FieldError) -> InvalidInputError:
    return InvalidInputError(message="The input was refused; nothing was sent.", field_errors=list(errors))


def _check_shape(input: CampaignSendProofInput) -> list[FieldError]:
    profiles, addresses = input.test_profile_ids or [], input.addresses or []
    if bool(profiles) == bool(addresses):
        return [FieldError(field="input.testProfileIds", code="ONE_OF", message="give testProfileIds or addresses")]
    field, given = ("input.testProfileIds", profiles) if profiles else ("input.addresses", addresses)
    if len(given) > MAX_PROOF_RECIPIENTS:
        return [FieldError(field=field, code="TOO_MANY", message=f"at most {MAX_PROOF_RECIPIENTS} recipients")]
    return []


def _check_addresses(channel: Channel, addresses: list[str]) -> tuple[list[str], list[FieldError]]:
    normalised: list[str] = []
    problems: list[FieldError] = []
    for i, address in enumerate(addresses):
        field = f"input.addresses.{i}"
        if not address.strip() or len(address) > 4096:
            problems.append(FieldError(field=field, code="INVALID", message="give a non-empty address"))
            continue
        kind = ADDRESS_TYPE.get(channel)
        if kind is None:
            normalised.append(address.strip())
            continue
        try:
            normalised.append(normalize_identity(kind, address))
        except ValueProblem as problem:
            problems.append(FieldError(field=field, code=problem.code, message=problem.message))
    return normalised, problems


def _treatment(row: CampaignModel, given: str | None, problems: list[FieldError]) -> str | None:
    """The treatment a proof sends: the one given, else the control; None without an experiment."""
    treatments = [t["key"] for t in (row.experiment or {}).get("treatments") or []]
    if given is None:
        return treatments[0] if treatments else None
    if given not in treatments:
        problems.append(FieldError(field="input.treatment", code="NOT_FOUND", message="no such treatment here"))
    return given


@strawberry.type
class CampaignProofMutation:
    @strawberry.mutation(
        description="Send the campaign's message now to at most 10 test profiles or addresses, with a `[Proof] ` "
        "subject prefix for email. Outside any run: no ledger row, no run counter. DRAFT campaigns, or a version "
        "of an activated one (`version`), with an ACTIVE preset only.",
        permission_classes=MANAGER,
    )
    async def campaign_send_proof(
        self, info: Info, input: Annotated[CampaignSendProofInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignSendProofResult:
        caller = info.context.require_caller()
        problems = _check_shape(input)
        if problems:
            return _invalid(*problems)
        pk = campaign_pk(input.id)
        stored = await CampaignModel.get_or_none(id=pk, sandbox_id=caller.sandbox_id) if pk else None
        if stored is None:
            return campaign_not_found(input.id)
        actions = [a.value for a in available_actions(stored.status, caller.role.value)]
        if input.version is None and stored.status is not CampaignStatus.DRAFT:
            return InvalidStateError(
                message="Proofs are sent for DRAFT campaigns, or for a version of an activated one (input.version).",
                current_status=stored.status.value,
                allowed_actions=actions,
            )
        row = await version_campaign(stored, input.version)
        if row is None:
            return _invalid(FieldError(field="input.version", code="NOT_FOUND", message="no such version here"))
        preset = (
            await MessagePreset.get_or_none(id=row.preset_id, sandbox_id=caller.sandbox_id) if row.preset_id else None
        )
        if preset is None or preset.status is not PresetStatus.ACTIVE or row.channel is None:
            return InvalidStateError(
                message="The campaign needs a channel and an ACTIVE preset before a proof can be sent.",
                current_status=row.status.value,
                allowed_actions=actions,
            )

        recipients: list[dict[str, Any]] = []
        if input.test_profile_ids:
            wanted = [pk_of(given, "Profile") for given in input.test_profile_ids]
            found = dict(
                await ProfileModel.filter(
                    sandbox_id=caller.sandbox_id, id__in=[p for p in wanted if p is not None]
                ).values_list("id", "test_profile")
            )
            for i, profile_pk in enumerate(wanted):
                field = f"input.testProfileIds.{i}"
                if profile_pk not in found:
                    problems.append(FieldError(field=field, code="NOT_FOUND", message="no such profile here"))
                elif not found[profile_pk]:
                    problems.append(FieldError(field=field, code="NOT_TEST_PROFILE", message="not a test profile"))
                else:
                    recipients.append({"profileId": profile_pk, "address": None})
        else:
            addresses, problems = _check_addresses(Channel(row.channel), list(input.addresses or []))
            recipients = [{"profileId": None, "address": address} for address in addresses]
        treatment = _treatment(row, input.treatment, problems)
        if problems:
            return _invalid(*problems)

        queue = info.context.queue
        if queue is None:
            raise RuntimeError("no job queue configured")
        job = await queue.send_proof(
            caller.sandbox_id,
            row.id,
            recipients,
            caller.actor,
            uuid.uuid4().hex,
            treatment=treatment,
            version=input.version,
        )
        try:
            result = await job.result(timeout=PROOF_DEADLINE_SECONDS, poll_delay=0.05)  # type: ignore[union-attr]
        except TimeoutError:
            return ProofTimeoutError(
                message=f"The proof did not finish within {PROOF_DEADLINE_SECONDS:.0f} s; it may still be sent."
            )
        if "error" in result:  # the campaign or preset changed between these checks and the job
            return InvalidStateError(message=result["error"], current_status=row.status.value, allowed_actions=actions)
        return CampaignSendProofSuccess(
            campaign=Campaign.from_model(stored),
            outcomes=[
                ProofOutcome(
                    recipient=o["recipient"],
                    status=ProofStatus(o["status"]),
                    message=o["message"],
                    profile_id=strawberry.ID(str(strawberry.relay.GlobalID("Profile", str(o["profileId"]))))
                    if o["profileId"] is not None
                    else None,
                )
                for o in result["outcomes"]
            ],
        )
