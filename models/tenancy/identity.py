from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import SandboxModel


class IdentityType(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    COOKIE = "COOKIE"
    DEVICE = "DEVICE"
    CROSS_DEVICE = "CROSS_DEVICE"
    PARTNER = "PARTNER"
    NON_PEOPLE = "NON_PEOPLE"


# (code, name, type, description) — the standard set created with every sandbox (DESIGN §3).
STANDARD_NAMESPACES: tuple[tuple[str, str, IdentityType, str], ...] = (
    ("Email", "Email", IdentityType.EMAIL, "Email address, stored lower-cased."),
    ("Phone", "Phone", IdentityType.PHONE, "Phone number in E.164 form."),
    ("ECID", "Experience Cloud ID", IdentityType.COOKIE, "Browser or device cookie identifier."),
    ("CRMID", "CRM ID", IdentityType.CROSS_DEVICE, "Identifier from the customer's CRM."),
    ("FCM", "Firebase Cloud Messaging", IdentityType.DEVICE, "Firebase push token."),
    ("APNS", "Apple Push Notification service", IdentityType.DEVICE, "Apple push token."),
)


class IdentityNamespace(SandboxModel):
    code = fields.CharField(max_length=50)
    name = fields.CharField(max_length=100)
    type = fields.CharEnumField(IdentityType, max_length=16)
    description = fields.TextField(default="")
    standard = fields.BooleanField(default=False)

    class Meta:
        table = "identity_namespace"
        unique_together = (("sandbox", "code"),)
