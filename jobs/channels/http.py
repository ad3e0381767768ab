"""What the HTTP provider adapters (SMS, push) share: one pooled client under the egress policy, and transport
errors → RETRY."""

from __future__ import annotations

import httpx

from jobs.channels.base import Backoff, FailureCode, SendResult, parse_retry_after
from jobs.channels.egress import EgressRefused, egress_client
from models.egress_rules import EgressPolicy


def provider_client(*, max_connections: int, timeout: float, egress: EgressPolicy) -> httpx.AsyncClient:
    return egress_client(egress, timeout=timeout, max_connections=max_connections)


def refused(exc: EgressRefused) -> SendResult:
    return SendResult.hard_fail(FailureCode.ADDRESS_NOT_ALLOWED, str(exc))


def transport_error(exc: httpx.HTTPError, backoff: Backoff, attempt: int) -> SendResult:
    """The request may not have reached the provider, or its answer was lost: try again later."""
    reason = FailureCode.TIMEOUT if isinstance(exc, httpx.TimeoutException) else FailureCode.CONNECTION
    return SendResult.retry(backoff.delay(attempt), reason, f"{type(exc).__name__}: {exc}")


def is_retryable(status_code: int) -> bool:
    return status_code in (408, 429) or status_code >= 500


def retry_response(
    response: httpx.Response, backoff: Backoff, attempt: int, message: str, provider_code: str | None
) -> SendResult:
    after = backoff.delay(attempt, parse_retry_after(response.headers.get("retry-after")))
    reason = FailureCode.THROTTLED if response.status_code == 429 else FailureCode.TEMPORARY
    return SendResult.retry(after, reason, message, provider_code=provider_code)


def json_or_empty(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
