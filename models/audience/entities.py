"""Audience tables: profiles and their identities, the suppression list, segments and static members."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.base import SandboxModel


class Consent(StrEnum):
    """Marketing consent for one channel, as stored (`y`/`n`/`unknown`)."""

    Y = "y"
    N = "n"
    UNKNOWN = "unknown"


class ContactChannel(StrEnum):
    """Channels that carry per-profile consent and a suppression list."""

    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "HARD_BOUNCE"
    SPAM_COMPLAINT = "SPAM_COMPLAINT"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    MANUAL = "MANUAL"


class SegmentKind(StrEnum):
    RULE = "RULE"
    STATIC = "STATIC"


class Profile(SandboxModel):
    attributes = fields.JSONField(default=dict)
    consent_email = fields.CharEnumField(Consent, max_length=8, default=Consent.UNKNOWN)
    consent_sms = fields.CharEnumField(Consent, max_length=8, default=Consent.UNKNOWN)
    consent_push = fields.CharEnumField(Consent, max_length=8, default=Consent.UNKNOWN)
    time_zone = fields.CharField(max_length=64, null=True)
    test_profile = fields.BooleanField(default=False)

    class Meta:
        table = "profile"
        indexes = (("sandbox_id", "test_profile"),)

    def consent(self, channel: ContactChannel) -> Consent:
        return Consent(getattr(self, CONSENT_COLUMNS[channel]))


# Column holding each channel's consent; also used to build SQL, so only these fixed names reach it.
CONSENT_COLUMNS: dict[ContactChannel, str] = {
    ContactChannel.EMAIL: "consent_email",
    ContactChannel.SMS: "consent_sms",
    ContactChannel.PUSH: "consent_push",
}


class ProfileIdentity(SandboxModel):
    """One identity (namespace + normalised value) of a profile, unique per sandbox."""

    # No semicolons in model docstrings: they become table comments, and SQLite migrations split on ';'.

    profile = fields.ForeignKeyField("herald.Profile", on_delete=fields.CASCADE, related_name="identities")
    namespace = fields.ForeignKeyField("herald.IdentityNamespace", on_delete=fields.RESTRICT, related_name=False)
    value = fields.CharField(max_length=512)

    profile_id: int
    namespace_id: int

    class Meta:
        table = "profile_identity"
        unique_together = (("sandbox_id", "namespace_id", "value"),)
        indexes = (("profile_id", "namespace_id"),)


class SuppressionEntry(SandboxModel):
    """An address that must not be contacted on a channel, with why and since when (`created_at`)."""

    address = fields.CharField(max_length=512)
    channel = fields.CharEnumField(ContactChannel, max_length=8)
    reason = fields.CharEnumField(SuppressionReason, max_length=16)

    class Meta:
        table = "suppression_entry"
        unique_together = (("sandbox_id", "channel", "address"),)


class Segment(SandboxModel):
    name = fields.CharField(max_length=100)
    description = fields.TextField(default="")
    kind = fields.CharEnumField(SegmentKind, max_length=8)
    # The rule tree of a RULE segment (see models.audience.segment_rules), with `inSegment` holding database ids.
    definition = fields.JSONField(null=True)

    class Meta:
        table = "segment"
        unique_together = (("sandbox_id", "name"),)


class SegmentMember(Model):
    """A profile listed in a STATIC segment."""

    id = fields.BigIntField(primary_key=True)
    segment = fields.ForeignKeyField("herald.Segment", on_delete=fields.CASCADE, related_name=False)
    profile = fields.ForeignKeyField("herald.Profile", on_delete=fields.CASCADE, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    segment_id: int
    profile_id: int

    class Meta:
        table = "segment_member"
        unique_together = (("segment_id", "profile_id"),)
        indexes = (("profile_id",),)
