"""Proofs: a DRAFT campaign's message (or a version of an activated one's) sent now to at most ten test
recipients, outside any run.

Rendered with the run executor's Renderer and sent through the same adapter the runs use (jobs.adapters
build_adapter), so a proof shows what a run would send; but no ledger row, no run counter, no suppression.
The job runs on a worker (which owns the SMTP pools and provider clients); `campaignSendProof` waits for its
result with a deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import Counter
from typing import Any

from jobs.adapters import build_adapter
from jobs.channels.base import EmailContent, OutgoingMessage, SendResult
from jobs.rendering import Renderer, RenderFailed
from models.audience.entities import Profile, ProfileIdentity
from models.audience.segment_rules import lookup
from models.audience.segments import ADDRESS_NAMESPACE_TYPE
from models.campaigns.campaign import Campaign
from models.campaigns.rules import CampaignStatus, Channel
from models.campaigns.values import CONTACT_CHANNEL
from models.campaigns.versions import version_campaign
from models.presets.preset import MessagePreset
from models.presets.rules import PresetStatus, execution_path
from models.presets.secret_box import SecretsUnreadableError
from models.tenancy.audit import record_audit
from models.tenancy.identity import IdentityNamespace

logger = logging.getLogger(__name__)

PROOF_SUBJECT_PREFIX = "[Proof] "
MAX_PROOF_RECIPIENTS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class ProofRecipient:
    """One proof: a test profile (address resolved from it) or a raw address (rendered with a sample profile)."""

    profile_id: int | None
    address: str | None


def outcome(recipient: str, status: str, message: str = "", profile_id: int | None = None) -> dict[str, Any]:
    return {"recipient": recipient, "status": status, "message": message, "profileId": profile_id}


async def _profile_address(
    profile: Profile, channel: Channel, preset: MessagePreset, namespace_id: int | None, fallback_ids: set[int]
) -> str | None:
    """`namespace_id`: the campaign's identity (inbox owner / device token) for in-app and push. `fallback_ids`: the
    sandbox's address namespaces, read when the preset's execution field gives no address."""
    identities = await ProfileIdentity.filter(profile_id=profile.id).values("namespace_id", "value")
    if channel in (Channel.IN_APP, Channel.PUSH):
        return next((i["value"] for i in identities if i["namespace_id"] == namespace_id), None)
    path = execution_path(preset.settings, channel)
    value = lookup(profile.attributes or {}, path) if path else None
    if isinstance(value, str) and value.strip():
        return value.strip().lower() if channel is Channel.EMAIL else value.strip()
    return next((i["value"] for i in identities if i["namespace_id"] in fallback_ids), None)


async def send_proof(
    ctx: dict[str, Any],
    sandbox_id: int,
    campaign_id: int,
    recipients: list[dict[str, Any]],
    actor: str,
    treatment: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Returns {"outcomes": [...]} (one per recipient, in order) or {"error": "..."} when nothing was sent.
    With `version`, the campaign as that version makes it (a draft version of an activated campaign)."""
    row = await Campaign.get_or_none(id=campaign_id, sandbox_id=sandbox_id)
    campaign = await version_campaign(row, version) if row is not None else None
    if campaign is None or campaign.channel is None:
        return {"error": "the campaign has no channel (or no such version)"}
    if version is None and campaign.status is not CampaignStatus.DRAFT:
        return {"error": f"proofs are for DRAFT campaigns; this one is {campaign.status.value}"}
    preset = (
        await MessagePreset.get_or_none(id=campaign.preset_id, sandbox_id=sandbox_id) if campaign.preset_id else None
    )
    if preset is None or preset.status is not PresetStatus.ACTIVE:
        return {"error": "the campaign's preset is missing or not ACTIVE"}
    channel = Channel(campaign.channel)
    namespace = await IdentityNamespace.get_or_none(id=campaign.namespace_id) if campaign.namespace_id else None
    wanted = [ProofRecipient(r.get("profileId"), r.get("address")) for r in recipients][:MAX_PROOF_RECIPIENTS]
    profiles = {
        p.id: p
        for p in await Profile.filter(
            sandbox_id=sandbox_id, id__in=[r.profile_id for r in wanted if r.profile_id is not None]
        )
    }
    # Raw addresses are rendered with the sandbox's first test profile, or an empty one.
    sample = await Profile.filter(sandbox_id=sandbox_id, test_profile=True).order_by("id").first()
    renderer = Renderer(campaign, treatment)
    address_type = ADDRESS_NAMESPACE_TYPE.get(CONTACT_CHANNEL.get(channel))  # type: ignore[arg-type]
    fallback_ids = set(
        await IdentityNamespace.filter(sandbox_id=sandbox_id, type=address_type).values_list("id", flat=True)
        if address_type is not None
        else []
    )

    results: list[dict[str, Any] | None] = [None] * len(wanted)
    messages: list[tuple[int, OutgoingMessage]] = []
    proof_key = f"proof-{uuid.uuid4().hex[:24]}"  # idempotency key / Message-ID base; inbox keys are ≤ 64 chars
    for index, recipient in enumerate(wanted):
        profile = profiles.get(recipient.profile_id) if recipient.profile_id is not None else sample
        if recipient.profile_id is not None:
            address = (
                await _profile_address(profile, channel, preset, campaign.namespace_id, fallback_ids)
                if profile
                else None
            )
            label = address or f"profile {recipient.profile_id}"
            if address is None:
                results[index] = outcome(label, "FAILED", "no address for this channel", recipient.profile_id)
                continue
        else:
            address = label = recipient.address or ""
        try:
            content = renderer.render((profile.attributes if profile else None) or {}, None)
        except RenderFailed as exc:
            results[index] = outcome(label, "FAILED", f"template: {exc}", recipient.profile_id)
            continue
        if isinstance(content, EmailContent):
            content = dataclasses.replace(content, subject=PROOF_SUBJECT_PREFIX + content.subject)
        messages.append((index, OutgoingMessage(f"{proof_key}-{index}", address, content)))

    if messages:
        try:
            adapter = build_adapter(ctx, campaign, preset, namespace)  # type: ignore[arg-type]
        except SecretsUnreadableError:
            return {"error": "the preset's secrets cannot be decrypted with the current SECRET_KEY"}
        try:
            sent = await adapter.send_batch([message for _, message in messages])
        finally:
            await adapter.close()
        for (index, message), result in zip(messages, sent, strict=True):
            results[index] = _outcome_of(message.address, result, wanted[index].profile_id)

    final = [r for r in results if r is not None]
    await record_audit(
        sandbox_id=sandbox_id,
        actor=actor,
        action="SEND_PROOF",
        object_type="Campaign",
        object_id=campaign.id,
        after={
            "recipients": [{"recipient": r["recipient"], "status": r["status"]} for r in final],
            **({"versionNumber": version} if version is not None else {}),
        },
    )
    log_proof_outcomes(campaign.id, final)
    return {"outcomes": final}


def log_proof_outcomes(campaign_id: int, outcomes: list[dict[str, Any]]) -> None:
    """Counts by status, at the level they deserve: INFO when all went, WARNING when some failed, ERROR when
    none did (a proof that reached nobody was logged `INFO proof sent`)."""
    counts = Counter(str(o["status"]) for o in outcomes)
    failed = len(outcomes) - counts.get("SENT", 0)
    level = logging.INFO if failed == 0 else logging.ERROR if failed == len(outcomes) else logging.WARNING
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    reasons = sorted({str(o.get("message") or "") for o in outcomes if o["status"] != "SENT"} - {""})
    logger.log(
        level,
        "proof of campaign %s: %s%s",
        campaign_id,
        summary or "no recipient",
        f" ({'; '.join(reasons)[:300]})" if reasons else "",
    )


def _outcome_of(address: str, result: SendResult, profile_id: int | None) -> dict[str, Any]:
    detail = f"{result.provider_code or ''} {result.message}".strip()
    if result.status.value == "SENT":
        return outcome(address, "SENT", result.provider_message_id or "", profile_id)
    # A proof is not retried: the author sees the provider's answer and sends another if they want.
    return outcome(address, "FAILED", detail or (result.reason.value if result.reason else "refused"), profile_id)
