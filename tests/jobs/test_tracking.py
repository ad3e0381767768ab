"""Tracking end to end: a marketing email campaign sent to a real SMTP sink by the session server's worker, then
its open pixel, click and unsubscribe URLs — taken from the received messages — fetched over HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from strawberry import relay

from api.webhooks import twilio_signature
from jobs.channels.base import EmailContent
from models.audience.entities import Profile, SuppressionEntry
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import Delivery
from models.presets.preset import MessagePreset
from models.reporting.tracking import TrackedLink, TrackingEvent
from models.reporting.tracking_tokens import TokenPurpose, TokenSigner, _b36
from tests.conftest import TEST_SECRET, GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_presets import create as create_preset
from tests.graphql.test_profiles import upsert
from tests.jobs.provider_server import ACCOUNT_SID, AUTH_TOKEN, provider_server
from tests.jobs.smtp_sink import Received, SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, finished_run, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

HTML = (
    "<html><body><p>Hello {{ profile.person.name.firstName }}</p>"
    '<a href="https://shop.example/sale?x=1&amp;y=2">Sale</a> '
    '<a href="https://shop.example/for/{{ profile.person.name.firstName }}">Yours</a> '
    '<a href="mailto:help@example.com">Help</a> <a href="#top">Top</a> '
    '<a href="{{ context.unsubscribeUrl }}">Unsubscribe</a></body></html>'
)
TEXT = "Sale: https://shop.example/sale?x=1&y=2. Unsubscribe: {{ context.unsubscribeUrl }}"
SALE = "https://shop.example/sale?x=1&y=2"


@dataclass
class SentCampaign:
    run: CampaignRun
    messages: dict[str, Received]  # by recipient
    deliveries: dict[str, Delivery]  # by address


async def send_marketing_email(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    names: list[str],
    tracking: dict[str, bool] | None = None,
    rcpt_replies: dict[str, str] | None = None,
    extra_profiles: list[dict[str, Any]] | None = None,
) -> SentCampaign:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD), rcpt_replies=rcpt_replies or {})
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        people = [gold(f"{n.lower()}@example.com", n, consent={"email": "Y"}) for n in names]
        await upsert(gql, sandbox.admin, people + (extra_profiles or []))
        segment_id = await gold_segment(gql, sandbox)
        fields: dict[str, Any] = {
            "name": "Tracked",
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {"email": {"subject": "Sale", "html": HTML, "text": TEXT}},
            "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
        }
        if tracking is not None:
            fields["tracking"] = tracking
        campaign = await create(gql, sandbox, fields)
        assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
        run = await finished_run(gql, campaign["id"])
    assert run.status is RunStatus.SUCCEEDED, run.failure_reason
    deliveries = {d.address: d for d in await Delivery.filter(run_id=run.id)}
    return SentCampaign(run, {r.recipients[0]: r for r in sink.handler.received}, deliveries)


def parts(message: Received) -> tuple[str, str]:
    parsed = message.parsed
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    return html, text


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


async def counts(delivery_id: int) -> dict[str, int]:
    rows = await TrackingEvent.filter(delivery_id=delivery_id).values_list("kind", flat=True)
    return {kind: list(rows).count(kind) for kind in set(rows)}


async def test_opens_clicks_and_unsubscribe_through_the_received_messages(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    sent = await send_marketing_email(gql, sandbox, ["Ann", "Bob", "Cy"])
    assert set(sent.messages) == {"ann@example.com", "bob@example.com", "cy@example.com"}
    base = server.settings.public_url
    ann = sent.deliveries["ann@example.com"]
    html, text = parts(sent.messages["ann@example.com"])
    links = hrefs(html)
    # Sale and the personal link are rewritten; mailto, the anchor and the unsubscribe link are not.
    assert [h.startswith(f"{base}/t/c/") for h in links] == [True, True, False, False, False]
    assert links[2:4] == ["mailto:help@example.com", "#top"]
    unsubscribe_url = links[4]
    assert unsubscribe_url.startswith(f"{base}/t/u/")
    header = sent.messages["ann@example.com"].parsed["List-Unsubscribe"]
    assert f"<{unsubscribe_url}>" in header
    assert sent.messages["ann@example.com"].parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    pixels = re.findall(r'<img src="([^"]+)"', html)
    assert len(pixels) == 1 and pixels[0].startswith(f"{base}/t/o/")
    assert html.index(pixels[0]) < html.index("</body>")
    # The text part: its link tracked, the unsubscribe URL left as is.
    text_click = re.search(r"Sale: (\S+)\. Unsubscribe: (\S+)", text)
    assert text_click and text_click.group(1).startswith(f"{base}/t/c/") and text_click.group(2) == unsubscribe_url

    # One shared link row and one per personalised URL, for the whole run.
    stored = dict(await TrackedLink.filter(run_id=sent.run.id).values_list("url", "id"))
    assert set(stored) == {SALE} | {f"https://shop.example/for/{n}" for n in ("Ann", "Bob", "Cy")}

    async with httpx.AsyncClient(base_url=base, timeout=10, headers={"User-Agent": "MailClient/1.0"}) as http:
        pixel = await http.get(pixels[0])
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        assert pixel.content.startswith(b"GIF89a") and "no-store" in pixel.headers["cache-control"]
        await http.get(pixels[0])
        for link, expected in (
            (links[0], SALE),
            (links[1], "https://shop.example/for/Ann"),
            (text_click.group(1), SALE),
        ):
            response = await http.get(link)
            assert response.status_code == 302 and response.headers["location"] == expected
        assert await counts(ann.id) == {"OPEN": 2, "CLICK": 3}
        clicks = await TrackingEvent.filter(delivery_id=ann.id, kind="CLICK").order_by("id")
        assert [c.link_id for c in clicks] == [stored[SALE], stored["https://shop.example/for/Ann"], stored[SALE]]
        assert clicks[0].user_agent == "MailClient/1.0" and clicks[0].run_id == sent.run.id
        assert clicks[0].profile_id == ann.profile_id and clicks[0].campaign_id == ann.campaign_id

        # Forged, altered and truncated tokens: 404, and nothing recorded.
        before = await TrackingEvent.all().count()
        token = links[0].rsplit("/", 1)[1]
        delivery_part, link_part, tag = token.split(".")
        other_link = stored["https://shop.example/for/Bob"]
        forged = [
            f"/t/c/{token[:-2]}",
            f"/t/c/{delivery_part}.{_b36(other_link)}.{tag}",  # another link id, same tag
            f"/t/c/{_b36(int(delivery_part, 36) + 1)}.{link_part}.{tag}",  # another delivery, same tag
            f"/t/o/{token}",  # a click token is no open token
            f"/t/o/{pixels[0].rsplit('/', 1)[1]}x",
            "/t/o/garbage",
            f"/t/u/{token}",
        ]
        for path in forged:
            assert (await http.get(path)).status_code == 404, path
        assert (await http.post(f"/t/u/{token}")).status_code == 404
        assert await TrackingEvent.all().count() == before

        # A genuine signature over a link of another run still redirects nowhere.
        signer = TokenSigner(TEST_SECRET)
        foreign = await TrackedLink.create(
            sandbox_id=sent.run.sandbox_id, run_id=await other_run(sent.run), campaign_id=sent.run.campaign_id,
            url_hash="f" * 64, url="https://evil.example/",
        )  # fmt: skip
        response = await http.get(f"/t/c/{signer.sign(TokenPurpose.CLICK, ann.id, foreign.id)}")
        assert response.status_code == 404 and "location" not in response.headers
        assert await TrackingEvent.all().count() == before

        # Unsubscribe: the page changes nothing; the one-click POST does, once.
        page = await http.get(unsubscribe_url)
        assert page.status_code == 200 and '<form method="post"' in page.text
        profile = await Profile.get(id=ann.profile_id)
        assert profile.consent_email.value == "y"
        assert not await SuppressionEntry.filter(sandbox_id=ann.sandbox_id, address="ann@example.com").exists()
        assert "UNSUBSCRIBE" not in await counts(ann.id)
        for _ in range(2):
            response = await http.post(
                unsubscribe_url,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200
    assert (await counts(ann.id))["UNSUBSCRIBE"] == 1
    assert (await Profile.get(id=ann.profile_id)).consent_email.value == "n"
    entries = await SuppressionEntry.filter(sandbox_id=ann.sandbox_id, address="ann@example.com")
    assert [(e.channel.value, e.reason.value) for e in entries] == [("EMAIL", "UNSUBSCRIBE")]
    # The others are untouched.
    bob = sent.deliveries["bob@example.com"]
    assert await counts(bob.id) == {}
    assert (await Profile.get(id=bob.profile_id)).consent_email.value == "y"


async def other_run(run: CampaignRun) -> int:
    from datetime import UTC, datetime

    other = await CampaignRun.create(
        sandbox_id=run.sandbox_id, campaign_id=run.campaign_id, scheduled_for=datetime(2030, 1, 1, tzinfo=UTC)
    )
    return other.id


async def test_tracking_off_leaves_the_message_as_rendered(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    sent = await send_marketing_email(gql, sandbox, ["Dee"], tracking={"opens": False, "clicks": False})
    html, text = parts(sent.messages["dee@example.com"])
    links = hrefs(html)
    assert links[0] == "https://shop.example/sale?x=1&amp;y=2" and "<img" not in html
    assert text.startswith(f"Sale: {SALE}.")
    # The unsubscribe link is there whatever the tracking options.
    assert links[4].startswith(f"{server.settings.public_url}/t/u/")
    assert await TrackedLink.filter(run_id=sent.run.id).count() == 0


async def test_link_ids_survive_the_per_run_cache_being_reset(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, monkeypatch
) -> None:
    from datetime import UTC, datetime

    import jobs.tracking
    from jobs.channels.base import SmsContent
    from jobs.tracking import MessageTracker
    from models.campaigns.campaign import Campaign

    sent = await send_marketing_email(gql, sandbox, ["Kim"])
    monkeypatch.setattr(jobs.tracking, "_LINK_CACHE_MAX", 3)
    tracker = MessageTracker(server.settings, await Campaign.get(id=sent.run.campaign_id), sent.run)
    now = datetime.now(UTC)
    first = [EmailContent("s", '<a href="https://a.example/">a</a> <a href="https://b.example/">b</a>', None)]
    await tracker.prepare(first, now)
    # Two known URLs and two new ones: over the cache size, so it starts again from this batch's URLs.
    second = [
        EmailContent("s", '<a href="https://a.example/">a</a> <a href="https://c.example/">c</a>', None),
        EmailContent("s", '<a href="https://b.example/">b</a> <a href="https://d.example/">d</a>', None),
    ]
    await tracker.prepare(second, now)
    for content in second:
        rewritten = tracker.apply(content, sent.deliveries["kim@example.com"].id).html
        assert rewritten.count(f"{server.settings.public_url}/t/c/") == 2, rewritten
    stored = set(await TrackedLink.filter(run_id=sent.run.id).values_list("url", flat=True))
    assert {"https://a.example/", "https://b.example/", "https://c.example/", "https://d.example/"} <= stored
    assert tracker.apply(SmsContent("x"), 1) == SmsContent("x")


async def test_mailbox_full_at_send_time_is_a_soft_bounce(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    sent = await send_marketing_email(
        gql, sandbox, ["Ike", "Jo"], rcpt_replies={"jo@example.com": "552 5.2.2 Mailbox full"}
    )
    jo = sent.deliveries["jo@example.com"]
    assert (jo.status.value, jo.reason, jo.bounce_type) == ("BOUNCED", "MAILBOX_FULL", "SOFT")
    assert sent.deliveries["ike@example.com"].bounce_type is None


async def test_sms_links_are_click_tracked_and_receipts_come_back_signed(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    base = server.settings.public_url
    async with provider_server() as providers:
        state = providers.fresh()
        created = await create_preset(
            gql,
            sandbox.admin,
            {
                "name": "Texts",
                "channel": "SMS",
                "category": "TRANSACTIONAL",
                "settings": {
                    "sms": {
                        "sender": "+14155550100",
                        "providerBaseUrl": state.base_url,
                        "accountSid": ACCOUNT_SID,
                        "authToken": AUTH_TOKEN,
                    }
                },
            },
        )
        # This fake provider has no account endpoint to validate against: the preset is made ACTIVE directly.
        await MessagePreset.filter(id=int(relay.GlobalID.from_id(created["id"]).node_id)).update(status="ACTIVE")
        people = [
            {"identities": [{"namespace": "Phone", "value": f"+1415555{2670 + i}"}], "attributes": {"tier": "gold"}}
            for i in range(2)
        ]
        assert (await upsert(gql, sandbox.admin, people))["created"] == 2
        segment_id = await gold_segment(gql, sandbox)
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "Texts",
                "category": "TRANSACTIONAL",
                "action": {"channel": "SMS", "presetId": created["id"]},
                "content": {"sms": {"text": "Sale at https://shop.example/sale?x=1 today."}},
                "audience": {"segmentId": segment_id, "namespaceCode": "Phone"},
            },
        )
        assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
        run = await finished_run(gql, campaign["id"])
    assert run.status is RunStatus.SUCCEEDED, run.failure_reason
    assert len(state.sms) == 2
    body = state.sms[0]["Body"]
    match = re.fullmatch(r"Sale at (\S+) today\.", body)
    assert match and match.group(1).startswith(f"{base}/t/c/"), body
    assert state.sms[0]["StatusCallback"].startswith(f"{base}/webhooks/sms/twilio?delivery=")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(match.group(1))
    assert response.status_code == 302 and response.headers["location"] == "https://shop.example/sale?x=1"

    # The provider's receipt for that message, signed as Twilio signs it.
    delivery = await Delivery.get(address=state.sms[0]["To"], run_id=run.id)
    form = {"MessageSid": delivery.provider_message_id, "MessageStatus": "delivered", "To": state.sms[0]["To"]}
    callback = state.sms[0]["StatusCallback"]
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            callback,
            content=urlencode(form).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(AUTH_TOKEN, callback, list(form.items())),
            },
        )
    assert response.status_code == 200, response.text
    assert (await Delivery.get(id=delivery.id)).status.value == "DELIVERED"
    # delivered counts SENT and DELIVERED (models/ledger/figures.py): both messages, the receipt confirmed one.
    assert (await CampaignRun.get(id=run.id)).delivered == 2
