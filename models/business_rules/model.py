"""BusinessRuleSet: a named set of frequency caps and quiet hours (models/business_rules/rules.py reads them)."""

from __future__ import annotations

from tortoise import fields

from models.base import SandboxModel
from models.business_rules.rules import RuleSet, rule_set_from_json


class BusinessRuleSet(SandboxModel):
    """Caps and quiet hours for the campaigns naming it, or for MARKETING campaigns naming none if default."""

    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    # {"caps": [{channel, category, limit, period, hours}], "quietHours": [{channel, weekdays, from, until, action}]}
    rules = fields.JSONField(default=dict)
    # The zone of calendar periods and quiet hours for profiles without a time zone; "" = the sandbox's.
    default_time_zone = fields.CharField(max_length=64, default="")
    is_default = fields.BooleanField(default=False)
    version = fields.IntField(default=1)

    class Meta:
        table = "business_rule_set"
        unique_together = (("sandbox_id", "name"),)

    def rule_set(self) -> RuleSet:
        return rule_set_from_json(self.rules or {})
