"""A small HTTP/1.1 keep-alive load generator: N connections, each sending one request after another.

Runs as its own process (the bench starts it), so the server under test never shares its event loop:

    python -m bench.loadgen --port 8000 --path /graphql --body-file q.json --header 'Authorization: Bearer …'
        --connections 32 --duration 10

Prints one JSON object: requests, errors (non-2xx or a body with "errors"), requests/s, p50/p99 latency in ms.

With `--rate R` the load is open-loop: requests are due at R per second in all, spread over the connections, and
a request's latency counts from when it was due, not from when a busy connection could send it (so a stall is
not hidden by the requests it delayed, as wrk2 does). Without it each connection sends as fast as answers come,
which measures throughput; latency then is only queueing (connections / throughput, Little's law).
Plain asyncio streams rather than an HTTP client library: httpx spent more CPU per request than the server
under test, which would measure the client.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Iterator


async def connection(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    warm_until: float,
    latencies: list[float],
    counts: dict[str, int],
    check_errors: bool,
    schedule: Iterator[float] | None = None,
    timeline: list[tuple[float, float]] | None = None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            started = time.perf_counter()
            if schedule is not None:
                due = next(schedule)
                if due > started:
                    await asyncio.sleep(due - started)
                started = due
            if started >= stop_at:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            done = time.perf_counter()
            counts["sent"] += 1
            if timeline is not None:
                timeline.append((done, done - started))
            if done < warm_until:
                continue
            latencies.append(done - started)
            counts["requests"] += 1
            if status >= 300 or (check_errors and b'"errors"' in body):
                counts["errors"] += 1
                if counts["errors"] == 1:
                    counts["first_error"] = f"{status} {body[:300]!r}"  # type: ignore[assignment]
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    body = open(args.body_file, "rb").read() if args.body_file else b""
    headers = [f"{args.method} {args.path} HTTP/1.1", f"Host: {args.host}:{args.port}"]
    headers += args.header
    if body:
        headers.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    latencies: list[float] = []
    timeline: list[tuple[float, float]] | None = [] if args.timeline else None
    # "sent" also counts the warm-up: the bench divides the server's CPU time over the whole run by it.
    counts: dict[str, int] = {"requests": 0, "errors": 0, "sent": 0}
    now = time.perf_counter()
    warm_until = now + args.warmup
    stop_at = warm_until + args.duration

    def schedule(index: int) -> Iterator[float] | None:
        if not args.rate:
            return None
        # Connection `index` takes every `connections`-th slot of one request per 1/rate seconds.
        return (now + (index + k * args.connections) / args.rate for k in itertools.count())

    await asyncio.gather(
        *(
            connection(
                args.host,
                args.port,
                request,
                stop_at,
                warm_until,
                latencies,
                counts,
                args.check_errors,
                schedule(index),
                timeline,
            )
            for index in range(args.connections)
        )
    )
    latencies.sort()
    n = len(latencies)
    extra = {"timeline": _per_second(timeline, warm_until, time.time() - time.perf_counter())} if timeline else {}
    return {
        **counts,
        **extra,
        "rps": n / args.duration,
        "p50_ms": latencies[n // 2] * 1000 if n else None,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else None,
    }


def _per_second(timeline: list[tuple[float, float]], warm_until: float, to_wall: float) -> list[dict]:
    """Per second of completion (counted from the end of the warm-up, which is included): requests, p50, p99
    and max in ms, and the second's wall-clock start (to line it up with what else ran)."""
    seconds: dict[int, list[float]] = {}
    for done, latency in timeline:
        seconds.setdefault(int((done - warm_until) // 1), []).append(latency)
    rows = []
    for second in sorted(seconds):
        values = sorted(seconds[second])
        n = len(values)
        rows.append({
            "second": second, "wall": warm_until + second + to_wall, "n": n, "p50_ms": values[n // 2] * 1000,
            "p99_ms": values[min(n - 1, int(n * 0.99))] * 1000, "max_ms": values[-1] * 1000,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body-file")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s in all, open-loop (0: as fast as answered)")
    parser.add_argument("--timeline", action="store_true", help="add per-second latency figures")
    parser.add_argument("--check-errors", action="store_true", help='count a body containing "errors" as failed')
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
