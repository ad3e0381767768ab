"""The recipients' `address` overrides, checked against the campaign's channel (both acceptance paths)."""

from __future__ import annotations

from models.audience.entities import ContactChannel
from models.audience.suppression import normalize_address
from models.audience.values import ValueProblem
from models.campaigns.rules import Channel
from models.campaigns.values import CONTACT_CHANNEL
from models.triggers.values import Problem, TriggerInvalidInputError, TriggerRequest


def check_addresses(request: TriggerRequest, channel: Channel | None, prefix: str) -> dict[int, str]:
    """The recipients' `address` overrides in their stored form, by recipient index; refused ones named."""
    contact = CONTACT_CHANNEL.get(channel) if channel is not None else None
    addresses: dict[int, str] = {}
    problems: list[Problem] = []
    for index, recipient in enumerate(request.recipients):
        if recipient.address is None:
            continue
        path = f"{prefix}.recipients[{index}].address"
        if contact not in (ContactChannel.EMAIL, ContactChannel.SMS):
            problems.append(Problem(path, "CHANNEL_MISMATCH", "an address is given only to EMAIL and SMS campaigns"))
            continue
        try:
            addresses[index] = normalize_address(contact, recipient.address)
        except ValueProblem as problem:
            problems.append(Problem(path, problem.code, problem.message))
    if problems:
        raise TriggerInvalidInputError(problems)
    return addresses
