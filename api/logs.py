"""Logging, configured once per entry point. Every record carries the request id, if any."""

from __future__ import annotations

import logging
import sys

from resolvers.request_id import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [req=%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Tortoise logs every SQL statement at DEBUG and each init/shutdown at INFO (noise around a CLI command's
    # one-line answer); its warnings and errors still show.
    logging.getLogger("tortoise").setLevel(max(logging.WARNING, root.level))
