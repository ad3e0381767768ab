from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.base import SandboxModel


class ApprovalPolicy(SandboxModel):
    """Conditions (an empty list or null matches anything) and who approves. Lists are JSON arrays of names."""

    name = fields.CharField(max_length=100)
    enabled = fields.BooleanField(default=True)
    channels = fields.JSONField(default=list)
    categories = fields.JSONField(default=list)
    # Matches when the campaign's estimated contactable audience is above this.
    audience_above = fields.IntField(null=True)
    requester_roles = fields.JSONField(default=list)
    approver_roles = fields.JSONField(default=list)
    # User ids (models.people.User) who may approve, beside anyone holding one of approver_roles.
    approver_user_ids = fields.JSONField(default=list)
    required_approvals = fields.IntField(default=1)

    class Meta:
        table = "approval_policy"
        indexes = (("sandbox_id", "id"),)


class ApprovalDecisionKind(StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"


class CampaignApproval(Model):
    """One step of a campaign's approval: the request (with the policies it matched) and each decision on it,
    with who, when and the campaign version they saw."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    campaign = fields.ForeignKeyField("herald.Campaign", on_delete=fields.CASCADE, related_name=False)
    # The REQUESTED row a decision answers (null on the request itself).
    request_id = fields.BigIntField(null=True)
    kind = fields.CharEnumField(ApprovalDecisionKind, max_length=20)
    actor = fields.CharField(max_length=100)
    actor_role = fields.CharField(max_length=16)
    user_id = fields.BigIntField(null=True)
    version = fields.IntField()
    # On the steps of a draft version's approval: its number (CampaignVersion.number); null for activation.
    version_number = fields.IntField(null=True)
    comment = fields.TextField(default="")
    policy_ids = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)

    sandbox_id: int
    campaign_id: int

    class Meta:
        table = "campaign_approval"
        indexes = (("campaign_id", "id"),)
