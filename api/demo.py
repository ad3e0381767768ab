"""`herald demo`: a `demo` sandbox a new user can review, activate and watch through GraphiQL within minutes.

Generated profiles (deterministic: the same seed gives the same people), an ACTIVE email preset pointing at
the local SMTP sink of `herald serve`, a rule segment and a DRAFT campaign with personalised content. Every
object goes through the same domain functions as the API (profile upsert, preset validation, segment and
campaign creation), so the demo shows nothing the product would refuse.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.settings import Settings
from models.audience.entities import Consent, ContactChannel
from models.audience.profile_writes import PreparedItem
from models.audience.profiles import IdentityValue, ProfileChanges, namespaces_by_code, prepare_item, write_items
from models.campaigns.rules import Category, Channel
from models.presets.actions import SettingsChange, create_preset
from models.presets.lifecycle import finish_validation, submit_validation
from models.presets.secret_box import SecretBox
from models.tenancy.sandbox import Role, Sandbox

DEMO_SANDBOX = "demo"
DEMO_ACTOR = "demo"
SEED = 20261128
BATCH = 2000
TEST_PROFILES = 3  # the first profiles are test profiles: proofs and previews use them

FIRST_NAMES = (
    "Ada Alan Alice Amara Ana Arjun Ben Carla Chen Chloé Dario Elena Emma Farah Felix Grace Hana Hugo Ines Ivan "
    "Jonas Julia Kai Karin Leo Lina Luca Maya Mateo Mia Nadia Noah Olga Omar Priya Rosa Sami Sofia Tariq Yuki"
).split()
LAST_NAMES = (
    "Almeida Bauer Bernard Costa Dubois Eriksen Fischer Garcia Hansen Ito Jensen Kowalski Laurent Martin Meyer "
    "Moreau Novak Okafor Petit Rossi Santos Schmidt Silva Tanaka Weber Yilmaz"
).split()
COUNTRIES = ("FR", "FR", "FR", "DE", "DE", "GB", "GB", "ES", "IT", "US", "US", "BR", "JP")
TIERS = ((0, "bronze"), (500, "silver"), (2000, "gold"), (5000, "platinum"))

SEGMENT_NAME = "Loyal members in Europe"
SEGMENT_RULE = {
    "all": [
        {"condition": {"path": "loyalty.points", "operator": "GTE", "value": 500}},
        {"condition": {"path": "homeAddress.countryCode", "operator": "IN", "value": ["FR", "DE", "GB", "ES", "IT"]}},
    ]
}
CAMPAIGN_CONTENT = {
    "email": {
        "subject": "{{ profile.person.name.firstName }}, your {{ profile.loyalty.points }} points are waiting",
        "preheader": "Your {{ profile.loyalty.tier }} rewards, this week only",
        "html": (
            "<html><body>\n"
            "<h1>Hello {{ profile.person.name.firstName }}!</h1>\n"
            "<p>You have <strong>{{ profile.loyalty.points }}</strong> points as a {{ profile.loyalty.tier }} "
            "member. Spend them before the end of the month.</p>\n"
            '<p><a href="https://shop.example.com/rewards">See your rewards</a></p>\n'
            '<p style="font-size:12px"><a href="{{ context.unsubscribeUrl }}">Unsubscribe</a></p>\n'
            "</body></html>"
        ),
        "text": (
            "Hello {{ profile.person.name.firstName }}!\n\n"
            "You have {{ profile.loyalty.points }} points as a {{ profile.loyalty.tier }} member.\n"
            "See your rewards: https://shop.example.com/rewards\n\n"
            "Unsubscribe: {{ context.unsubscribeUrl }}\n"
        ),
    }
}


class DemoExistsError(Exception):
    pass


@dataclass
class DemoLoaded:
    api_key: str
    profiles: int
    preset_status: str
    campaign_id: str
    segment_id: str
    test_profile_ids: list[str]


def _consent(rng: random.Random, yes: float, no: float) -> Consent:
    draw = rng.random()
    return Consent.Y if draw < yes else Consent.N if draw < yes + no else Consent.UNKNOWN


def demo_profiles(count: int, seed: int = SEED) -> Iterator[ProfileChanges]:
    """`count` people, the same ones for the same seed: names, emails, phones, countries, loyalty, consent."""
    rng = random.Random(seed)
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}.{i}@example.com".lower().replace("é", "e")
        phone = f"+336{10_000_000 + i:08d}"  # French mobile numbers: valid E.164, one per profile
        points = int(rng.paretovariate(1.2) * 150) if rng.random() < 0.85 else 0
        tier = next(name for floor, name in reversed(TIERS) if points >= floor)
        attributes: dict[str, Any] = {
            "person": {"name": {"firstName": first, "lastName": last}},
            "homeAddress": {"countryCode": rng.choice(COUNTRIES)},
            "loyalty": {"points": points, "tier": tier},
        }
        identities = [IdentityValue("Email", email), IdentityValue("CRMID", f"CRM{i:07d}")]
        if rng.random() < 0.97:  # a few have no personalEmail attribute: excluded for NO_ADDRESS
            attributes["personalEmail"] = {"address": email}
        if rng.random() < 0.8:
            attributes["mobilePhone"] = {"number": phone}
            identities.append(IdentityValue("Phone", phone))
        yield ProfileChanges(
            identities=identities,
            attributes=attributes,
            consent={
                ContactChannel.EMAIL: Consent.Y if i < TEST_PROFILES else _consent(rng, 0.75, 0.1),
                ContactChannel.SMS: _consent(rng, 0.5, 0.2),
                ContactChannel.PUSH: _consent(rng, 0.4, 0.1),
            },
            time_zone="Europe/Paris",
            test_profile=i < TEST_PROFILES,
        )


async def load_profiles(sandbox_id: int, count: int) -> int:
    """Set-based, through the profile upsert's writer (models.profiles.write_items), BATCH rows a transaction."""
    namespaces = await namespaces_by_code(sandbox_id)
    written = 0
    batch: list[PreparedItem] = []

    async def flush() -> None:
        nonlocal written
        results = await write_items(sandbox_id, batch, audit_actor=None)
        written += sum(1 for r in results if r.status == "CREATED")
        batch.clear()

    for index, changes in enumerate(demo_profiles(count)):
        prepared, problems = prepare_item(index, changes, namespaces, "demo.profiles")
        if problems:  # the generator makes valid people only; a problem here is a bug worth seeing
            raise ValueError(f"generated profile {index} refused: {problems}")
        batch.append(prepared)
        if len(batch) >= BATCH:
            await flush()
    if batch:
        await flush()
    return written


def sink_preset_settings(sink_port: int) -> dict[str, Any]:
    return {
        "sender_name": "Herald Demo",
        "sender_address": "news@demo.example.com",
        "reply_to_address": "help@demo.example.com",
        "list_unsubscribe": True,
        "execution_field": "personalEmail.address",
        "smtp_host": "127.0.0.1",
        "smtp_port": sink_port,
        "tls_mode": "NONE",
        "max_connections": 5,
        "retry_period_minutes": 6 * 60,
    }


async def validate_against_sink(settings: Settings, preset_id: int, version: int, sink_port: int) -> str:
    """The preset validation job's checks, against the sink of the running `herald serve`."""
    from jobs.preset_checks import provider_checks

    values = sink_preset_settings(sink_port)
    checks = await provider_checks(
        Channel.EMAIL, values, {}, settings.preset_check_timeout_seconds, egress=settings.egress_policy
    )
    row = await finish_validation(
        preset_id=preset_id, version=version, checks=[c.as_dict() for c in checks], actor=DEMO_ACTOR
    )
    return row.status.value if row is not None else "UNKNOWN"


async def load_demo(settings: Settings, *, profiles: int, sink_port: int) -> DemoLoaded:
    from strawberry import relay

    from models.audience.entities import Profile, SegmentKind
    from models.audience.segments import create_segment
    from models.campaigns.actions import create_campaign
    from models.tenancy.actions import create_api_key, create_sandbox

    if await Sandbox.filter(name=DEMO_SANDBOX).exists():
        raise DemoExistsError(
            f"a sandbox named {DEMO_SANDBOX!r} exists already; nothing was changed. Get a key for it with "
            f"`herald apikey create --sandbox {DEMO_SANDBOX} --role ADMIN`, or start from an empty DATA_DIR."
        )
    sandbox = await create_sandbox(DEMO_SANDBOX, actor=DEMO_ACTOR)
    created = await load_profiles(sandbox.id, profiles)

    box = SecretBox(settings.secret_key.get_secret_value())
    preset = await create_preset(
        sandbox_id=sandbox.id,
        actor=DEMO_ACTOR,
        box=box,
        name="local-sink",
        description="The local SMTP sink of `herald serve`: mail is kept in DATA_DIR/mail, nothing leaves.",
        channel=Channel.EMAIL,
        category=Category.MARKETING,
        change=SettingsChange(channel=Channel.EMAIL, settings=sink_preset_settings(sink_port)),
    )
    preset = await submit_validation(sandbox_id=sandbox.id, preset_id=preset.id, actor=DEMO_ACTOR)
    preset_status = await validate_against_sink(settings, preset.id, preset.version, sink_port)

    segment = await create_segment(
        sandbox.id,
        name=SEGMENT_NAME,
        description="At least 500 loyalty points, living in FR, DE, GB, ES or IT.",
        kind=SegmentKind.RULE,
        rule=SEGMENT_RULE,
        actor=DEMO_ACTOR,
    )
    campaign = await create_campaign(
        sandbox.id,
        {
            "name": "Loyalty points reminder",
            "description": "Created by `herald demo`: review it, then activate it.",
            "tags": ["demo"],
            "type": "SCHEDULED",
            "category": Category.MARKETING.value,
            "channel": Channel.EMAIL.value,
            "preset_id": preset.id,
            "content": CAMPAIGN_CONTENT,
            "tracking": {"opens": True, "clicks": True},
            "segment_id": segment.id,
            "namespace_code": "Email",
            "schedule": {},
            "throttle_per_second": None,
        },
        actor=DEMO_ACTOR,
    )
    _, api_key = await create_api_key(DEMO_SANDBOX, Role.ADMIN, name="herald demo", actor=DEMO_ACTOR)
    test_ids = (
        await Profile.filter(sandbox_id=sandbox.id, test_profile=True).order_by("id").values_list("id", flat=True)
    )
    return DemoLoaded(
        api_key=api_key,
        profiles=created,
        preset_status=preset_status,
        campaign_id=str(relay.GlobalID("Campaign", str(campaign.id))),
        segment_id=str(relay.GlobalID("Segment", str(segment.id))),
        test_profile_ids=[str(relay.GlobalID("Profile", str(pk))) for pk in test_ids],
    )


def next_steps(loaded: DemoLoaded, settings: Settings, url: str) -> str:
    mail = (settings.data_dir / "mail").as_posix()
    campaign = loaded.campaign_id
    profile = loaded.test_profile_ids[0] if loaded.test_profile_ids else "<a profile id>"
    review = (
        f'query {{ campaignReview(id: "{campaign}") {{ ... on CampaignReview {{ canActivate '
        "alerts { severity code message } plan { qualified contactable } } } }"
    )
    preview = (
        f'query {{ campaignPreview(id: "{campaign}", profileId: "{profile}") '
        "{ ... on CampaignPreview { subject preheader html } } }"
    )
    watch = f'subscription {{ campaignRunProgress(campaignId: "{campaign}") {{ status sent pending ratePerSecond }} }}'
    activate = f'mutation {{ campaignActivate(input: {{id: "{campaign}"}}) {{ __typename }} }}'
    return "\n".join(
        [
            f"Loaded sandbox {DEMO_SANDBOX!r}: {loaded.profiles} profiles, the email preset 'local-sink' "
            f"({loaded.preset_status}), the segment {SEGMENT_NAME!r} and the DRAFT campaign {campaign}.",
            "",
            f"ADMIN API key for sandbox {DEMO_SANDBOX!r} (shown once, store it now):",
            f"  {loaded.api_key}",
            "",
            'Next steps (README, "First run"): keep `herald serve` running (it holds the SMTP sink),',
            f"open {url} in a browser and set the header",
            f'  {{"Authorization": "Bearer {loaded.api_key}"}}',
            f"  1. Review:   {review}",
            f"  2. Preview:  {preview}",
            f"  3. Watch (second tab):  {watch}",
            f"  4. Activate: {activate}",
            f"  5. Read the mail: ls {mail}/new  (one file per message)",
        ]
    )
