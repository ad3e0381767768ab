"""A trigger recipient's `address` (issue 17): checked against the campaign's channel, stored normalised."""

from __future__ import annotations

import pytest

from models.campaigns.rules import Channel
from models.triggers.addresses import check_addresses
from models.triggers.values import TriggerInvalidInputError, TriggerRecipient, TriggerRequest


def request(*addresses: str | None) -> TriggerRequest:
    recipients = tuple(TriggerRecipient(profile_id=i + 1, address=a) for i, a in enumerate(addresses))
    return TriggerRequest(campaign_id=1, idempotency_key="k", recipients=recipients)


def refused(channel: Channel, *addresses: str | None) -> list[tuple[str, str]]:
    with pytest.raises(TriggerInvalidInputError) as caught:
        check_addresses(request(*addresses), channel, "input")
    return [(p.field, p.code) for p in caught.value.problems]


def test_email_addresses_are_lower_cased_and_sms_numbers_are_e164() -> None:
    assert check_addresses(request(None, "Ann@Example.COM"), Channel.EMAIL, "input") == {1: "ann@example.com"}
    assert check_addresses(request("+33 6 12 34 56 78"), Channel.SMS, "input") == {0: "+33612345678"}


def test_each_refused_address_is_named() -> None:
    assert refused(Channel.EMAIL, "ok@example.com", "not an email", "") == [
        ("input.recipients[1].address", "INVALID_EMAIL"),
        ("input.recipients[2].address", "EMPTY"),
    ]
    assert refused(Channel.SMS, "0612345678") == [("input.recipients[0].address", "INVALID_PHONE")]
    assert refused(Channel.IN_APP, "a@example.com") == [("input.recipients[0].address", "CHANNEL_MISMATCH")]


def test_the_address_is_part_of_the_request_hash_only_when_given() -> None:
    plain = TriggerRequest(campaign_id=1, idempotency_key="k", recipients=(TriggerRecipient(profile_id=1),))
    assert "address" not in plain.body()["recipients"][0]
    assert request("a@example.com").request_hash() != request("b@example.com").request_hash()
