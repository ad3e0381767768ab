"""A round trip through the whole machinery: API → queue → worker → pub/sub → subscribers."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from jobs.events import WORKER_PONG_TOPIC, publish


async def worker_ping(ctx: dict[str, Any], sandbox_id: int, message: str, ping_id: str) -> dict[str, Any]:
    pong = {
        "pingId": ping_id,
        "message": message,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "jobTry": ctx.get("job_try", 1),
        "at": datetime.now(UTC).isoformat(),
    }
    await publish(ctx["redis"], sandbox_id, WORKER_PONG_TOPIC, pong)
    return pong
