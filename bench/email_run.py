"""email_run (issue 22): a whole email run, personalised and tracked, to a local SMTP sink, against the same
messages pre-rendered and sent through a pool of the same size; plus the worker's peak RSS.

- measured: messages/s of `execute_run` in a worker subprocess (bench.execution_worker: snapshot, render with
  the profile's name, open pixel and click links rewritten, List-Unsubscribe, ledger outcomes every chunk);
- reference: the same profiles' messages rendered and composed beforehand (Renderer + EmailComposer, links
  not rewritten: nothing to look up), then only `sendmail` through an `SmtpPool` of as many connections, in a
  process of its own at the worker's priority (WORKER_NICE, as the worker);
- target: >= 0.8 of the reference, and the worker's peak RSS (VmHWM) < 300 MB.

The sink is aiosmtpd's Sink in another process (bench/email_adapter.py). Size: BENCH_PROFILES (the execution
benchmarks' profiles, `--profiles`); BENCH_EMAIL_CONNECTIONS (default 10) connections on both sides.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, Result, dsn_for, server_env
from bench.execution import _new_run_plain, _setup, _truncate

CONNECTIONS = int(os.environ.get("BENCH_EMAIL_CONNECTIONS", "10"))
SENDER = {"sender_name": "Shop News", "sender_address": "news@shop.example"}
PARAGRAPH = (
    "<p>Hello {{ profile.person.name.firstName }}, here is this week's selection for you, with "
    '<a href="https://shop.example/picks?week=1">the picks</a> and '
    '<a href="https://shop.example/sale">the sale</a>.</p>\n'
)
CONTENT = {
    "email": {
        "subject": "{{ profile.person.name.firstName }}, your {{ profile.loyalty.points }} points",
        "preheader": None,
        "html": "<html><body>"
        + PARAGRAPH * 12
        + '<a href="{{ context.unsubscribeUrl }}">unsubscribe</a></body></html>',
        "text": "Hello {{ profile.person.name.firstName }}, this week's selection: https://shop.example/picks",
    }
}


async def _campaign(database: str, ids: dict[str, Any], port: int, secret: str) -> int:
    """An email preset to the sink and a LIVE marketing campaign (tracking on: opens and clicks) to everyone."""
    from tortoise import Tortoise

    from api.settings import tortoise_config
    from models.campaigns.campaign import Campaign
    from models.campaigns.rules import CampaignStatus, Category, Channel
    from models.presets.preset import MessagePreset
    from models.presets.rules import PresetStatus
    from models.presets.secret_box import SecretBox

    await Tortoise.init(config=tortoise_config(dsn_for(database), 2))
    try:
        preset = await MessagePreset.create(
            sandbox_id=ids["sandbox"],
            name=f"sink {port}",
            channel=Channel.EMAIL,
            category=Category.MARKETING,
            status=PresetStatus.ACTIVE,
            settings={
                **SENDER, "smtp_host": "127.0.0.1", "smtp_port": port, "tls_mode": "NONE", "list_unsubscribe": True,
                "max_connections": CONNECTIONS, "retry_period_minutes": 60,
            },
            secrets=SecretBox(secret).seal({}, sandbox_id=ids["sandbox"]),
        )  # fmt: skip
        campaign = await Campaign.create(
            sandbox_id=ids["sandbox"], name=f"email run {port}", channel=Channel.EMAIL, category=Category.MARKETING,
            preset=preset, segment_id=ids["everyone"], namespace_id=ids["namespace"], content=CONTENT,
            tracking={"opens": True, "clicks": True}, status=CampaignStatus.LIVE,
        )  # fmt: skip
        return campaign.id
    finally:
        await Tortoise.close_connections()


async def _reference(database: str, campaign_id: int, port: int, n: int) -> tuple[float, float]:
    """The run's messages pre-rendered, then sent through a pool of the same size: messages/s of the sending, and
    this process's CPU seconds per message while sending."""
    from tortoise import Tortoise

    from api.settings import tortoise_config
    from bench.email_adapter import reference
    from jobs.channels.email import SmtpPool, SmtpTransport
    from jobs.channels.email_message import EmailComposer, EmailSender
    from jobs.rendering import Renderer
    from models.audience.entities import Profile
    from models.campaigns.campaign import Campaign
    from models.ledger.delivery import Delivery

    await Tortoise.init(config=tortoise_config(dsn_for(database), 2))
    try:
        campaign = await Campaign.get(id=campaign_id)
        rows = (
            await Delivery.filter(campaign_id=campaign_id, status="SENT")
            .limit(n)
            .values_list("id", "profile_id", "address", "idempotency_key")
        )
        attributes = dict(await Profile.filter(id__in=[r[1] for r in rows]).values_list("id", "attributes"))
    finally:
        await Tortoise.close_connections()
    renderer = Renderer(campaign).variant(None)
    composer = EmailComposer(EmailSender(SENDER["sender_address"], SENDER["sender_name"], None))
    prebuilt = [
        composer.compose(renderer.render(attributes[pid], f"https://herald.bench.example/u/{i}"), address, key)  # type: ignore[arg-type]
        for i, pid, address, key in rows
    ]
    transport = SmtpTransport("127.0.0.1", port, max_connections=CONNECTIONS)
    pool = SmtpPool(transport)
    try:
        cpu_started = time.process_time()
        rate = await reference(pool, prebuilt)
        return rate, (time.process_time() - cpu_started) / max(len(prebuilt), 1)
    finally:
        await pool.close()


def _reference_process(database: str, campaign_id: int, port: int, n: int) -> tuple[float, float]:
    """`_reference` in a process of its own at the worker's priority (WORKER_NICE, default 10, lowered as the
    worker lowers its own): a niced worker against a reference at full priority measured how busy the machine's
    other processes were, not the sending path (ratios 0.15-0.90 a minute apart on a shared machine)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.email_run", database, str(campaign_id), str(port), str(n)],
        env=server_env(database), cwd=ROOT, capture_output=True, text=True, timeout=7200,
    )  # fmt: skip
    if output.returncode != 0:
        raise RuntimeError(f"reference subprocess failed:\n{output.stderr[-3000:]}")
    measured = json.loads(output.stdout.strip().splitlines()[-1])
    return measured["rate"], measured["cpu_per_message"]


def run(database: str, seeded: dict[str, object]) -> Result:
    from bench.email_adapter import start_sink

    ids = asyncio.run(_setup(database))
    asyncio.run(_truncate(database))
    secret = secrets.token_urlsafe(48)
    sink, port = start_sink()
    try:
        campaign_id = asyncio.run(_campaign(database, ids, port, secret))
        run_id = asyncio.run(_new_run_plain(database, campaign_id, ids["sandbox"]))
        env = server_env(database, SECRET_KEY=secret, EGRESS_ALLOW="127.0.0.0/8")
        output = subprocess.run(
            [sys.executable, "-m", "bench.execution_worker", str(run_id)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=7200,
        )  # fmt: skip
        if output.returncode != 0:
            raise RuntimeError(f"worker subprocess failed:\n{output.stderr[-3000:]}")
        worker = json.loads(output.stdout.strip().splitlines()[-1])
        reference_rate, reference_cpu = _reference_process(database, campaign_id, port, worker["sent"])
    finally:
        sink.terminate()
        sink.wait(5)
        asyncio.run(_truncate(database))
    sending = worker["seconds"] - worker["snapshot_seconds"]
    measured = worker["sent"] / worker["seconds"]
    ratio = measured / reference_rate
    rss = worker["peak_rss_mb"]
    worker_cpu = worker["cpu_seconds"] / max(worker["sent"], 1)
    return Result(
        "email_run", "msgs/s", measured, reference_rate, ">= 0.8 of pre-rendered, RSS < 300 MB",
        ratio >= 0.8 and rss < 300,
        f"{worker['sent']} emails in {worker['seconds']:.1f} s (snapshot {worker['snapshot_seconds']:.1f} s, "
        f"sending alone {worker['sent'] / max(sending, 1e-9):.0f}/s), {CONNECTIONS} connections, worker peak RSS "
        f"{rss:.0f} MB, status {worker['status']}; CPU per message: worker {worker_cpu * 1000:.2f} ms (snapshot "
        f"included), reference {reference_cpu * 1000:.2f} ms; worker's garbage collector "
        f"{sum(worker.get('gc_seconds', [0.0])):.2f} s (by generation {worker.get('gc_seconds')})",
    )  # fmt: skip


if __name__ == "__main__":  # the reference's own process: DATABASE CAMPAIGN_ID SINK_PORT MESSAGES
    from api.settings import Settings
    from jobs.worker import lower_priority

    lower_priority(Settings())
    rate, cpu = asyncio.run(_reference(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    print(json.dumps({"rate": rate, "cpu_per_message": cpu}), flush=True)
