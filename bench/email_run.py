"""email_run (issue 22): a whole email run, personalised and tracked, to a local SMTP sink, against the same
messages pre-rendered and sent through a pool of the same size; plus the worker's peak RSS.

- measured: messages/s of `execute_run` in a worker subprocess (bench.execution_worker: snapshot, render with
  the profile's name, open pixel and click links rewritten, List-Unsubscribe, ledger outcomes every chunk);
- reference: the same messages (the run's SENT rows) rendered, tracked with the run's link ids and composed
  beforehand, 50,000 at a time, then only `sendmail` through an `SmtpPool` of as many connections, in a process
  of its own at the worker's priority (WORKER_NICE) and on its event loop (jobs.worker.run_loop);
- target: >= 0.8 of the reference, and the worker's peak RSS (VmHWM) < 300 MB.

The sink is aiosmtpd's Sink in another process (bench/email_adapter.py). Size: BENCH_PROFILES (the execution
benchmarks' profiles, `--profiles`); BENCH_EMAIL_CONNECTIONS (default 10) connections on both sides. Besides the
rates, the line gives the sink's CPU per message on each side, the PostgreSQL server's during the run, and the
worker's wall and CPU seconds by step (claims, preparation, streams, outcome writes, counts).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import ROOT, Result, cpu_seconds, dsn_for, postgres_cpu_seconds, server_env
from bench.execution import _new_run_plain, _setup, _truncate

CONNECTIONS = int(os.environ.get("BENCH_EMAIL_CONNECTIONS", "10"))
REFERENCE_PART = 50_000  # messages the reference builds, then sends, at a time
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


async def _reference(database: str, campaign_id: int, run_id: int, port: int, n: int) -> tuple[float, float]:
    """The run's messages pre-rendered, then sent through a pool of the same size: messages/s of the sending, and
    this process's CPU seconds per message while sending. The messages are the ones the worker sent, byte for byte
    but for the tracking tokens' signatures: rendered, tracked with the run's link ids (stored by the run) and
    composed, before the clock starts."""
    from tortoise import Tortoise

    from api.settings import Settings, tortoise_config
    from bench.email_adapter import reference
    from jobs.channels.email import SmtpPool, SmtpTransport
    from jobs.channels.email_message import EmailComposer, EmailSender
    from jobs.rendering import Renderer
    from jobs.tracking import MessageTracker
    from models.audience.entities import Profile
    from models.campaigns.campaign import Campaign, CampaignRun
    from models.ledger.delivery import Delivery

    await Tortoise.init(config=tortoise_config(dsn_for(database), 2))
    pool = SmtpPool(SmtpTransport("127.0.0.1", port, max_connections=CONNECTIONS))
    try:
        campaign = await Campaign.get(id=campaign_id)
        rows = (
            await Delivery.filter(campaign_id=campaign_id, status="SENT")
            .order_by("id")
            .limit(n)
            .values_list("id", "profile_id", "address", "idempotency_key")
        )
        renderer = Renderer(campaign).variant(None)
        tracker = MessageTracker(Settings(), campaign, await CampaignRun.get(id=run_id))
        composer = EmailComposer(EmailSender(SENDER["sender_address"], SENDER["sender_name"], None))
        seconds = cpu_seconds = 0.0
        # Built and sent a part at a time: 1,000,000 messages built beforehand would hold ~5 GB.
        for start in range(0, len(rows), REFERENCE_PART):
            part = rows[start : start + REFERENCE_PART]
            attributes: dict[int, Any] = {}
            for offset in range(0, len(part), 10_000):  # a statement takes at most 32,767 parameters
                ids = [pid for _, pid, _, _ in part[offset : offset + 10_000]]
                attributes.update(await Profile.filter(id__in=ids).values_list("id", "attributes"))
            contents = [renderer.render(attributes[pid], tracker.unsubscribe_url(i)) for i, pid, _, _ in part]
            contents = await tracker.track(contents, [i for i, _, _, _ in part], datetime.now(UTC))
            prebuilt = [
                composer.compose(content, address, key)  # type: ignore[arg-type]
                for content, (_, _, address, key) in zip(contents, part, strict=True)
            ]
            cpu_started = time.process_time()
            seconds += len(prebuilt) / await reference(pool, prebuilt)
            cpu_seconds += time.process_time() - cpu_started
    finally:
        await pool.close()
        await Tortoise.close_connections()
    return len(rows) / seconds, cpu_seconds / max(len(rows), 1)


def _reference_process(database: str, campaign_id: int, run_id: int, port: int, n: int) -> tuple[float, float]:
    """`_reference` in a process of its own at the worker's priority (WORKER_NICE, default 10, lowered as the
    worker lowers its own): a niced worker against a reference at full priority measured how busy the machine's
    other processes were, not the sending path (ratios 0.15-0.90 a minute apart on a shared machine)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.email_run", database, str(campaign_id), str(run_id), str(port), str(n)],
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
        sink_started, postgres_started = cpu_seconds(sink.pid), postgres_cpu_seconds()
        output = subprocess.run(
            [sys.executable, "-m", "bench.execution_worker", str(run_id)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=7200,
        )  # fmt: skip
        if output.returncode != 0:
            raise RuntimeError(f"worker subprocess failed:\n{output.stderr[-3000:]}")
        worker = json.loads(output.stdout.strip().splitlines()[-1])
        # Beside the worker's own CPU, what its run cost the sink and the database (both share the 2 cores).
        sink_worker, postgres_worker = cpu_seconds(sink.pid) - sink_started, postgres_cpu_seconds() - postgres_started
        sink_started = cpu_seconds(sink.pid)
        reference_rate, reference_cpu = _reference_process(database, campaign_id, run_id, port, worker["sent"])
        sink_reference = cpu_seconds(sink.pid) - sink_started
    finally:
        sink.terminate()
        sink.wait(5)
        asyncio.run(_truncate(database))
    sending = worker["seconds"] - worker["snapshot_seconds"]
    measured = worker["sent"] / worker["seconds"]
    ratio = measured / reference_rate
    rss = worker["peak_rss_mb"]
    sent = max(worker["sent"], 1)
    worker_cpu = worker["cpu_seconds"] / sent
    return Result(
        "email_run", "msgs/s", measured, reference_rate, ">= 0.8 of pre-rendered, RSS < 300 MB",
        ratio >= 0.8 and rss < 300,
        f"{worker['sent']} emails in {worker['seconds']:.1f} s (snapshot {worker['snapshot_seconds']:.1f} s, "
        f"sending alone {worker['sent'] / max(sending, 1e-9):.0f}/s), {CONNECTIONS} connections, worker peak RSS "
        f"{rss:.0f} MB, status {worker['status']}; CPU per message: worker {worker_cpu * 1000:.2f} ms (snapshot "
        f"included), reference {reference_cpu * 1000:.2f} ms; worker's garbage collector "
        f"{sum(worker.get('gc_seconds', [0.0])):.2f} s (by generation {worker.get('gc_seconds')}); sink CPU per "
        f"message {sink_worker / sent * 1000:.2f} ms for the worker, {sink_reference / sent * 1000:.2f} ms for the "
        f"reference; the PostgreSQL server's CPU per message during the worker's run "
        f"{postgres_worker / sent * 1000:.2f} ms; worker's [wall s, CPU s, calls] by step "
        f"{worker.get('phase_seconds')}",
    )  # fmt: skip


if __name__ == "__main__":  # the reference's own process: DATABASE CAMPAIGN_ID RUN_ID SINK_PORT MESSAGES
    from api.settings import Settings
    from jobs.worker import lower_priority, run_loop

    lower_priority(Settings())
    rate, cpu = run_loop(_reference(sys.argv[1], *(int(arg) for arg in sys.argv[2:6])))  # the worker's loop
    print(json.dumps({"rate": rate, "cpu_per_message": cpu}), flush=True)
