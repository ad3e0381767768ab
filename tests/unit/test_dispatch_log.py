"""The dispatcher's idle passes log at DEBUG: arq's own start/end lines (its format strings, arq 0.28 pinned) of the
`dispatch` cron go through QuietDispatchLog; other jobs' lines and arq's warnings are left alone."""

import logging

import pytest

from jobs.dispatcher import QuietDispatchLog


def arq_record(msg: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("arq.worker", level, "worker.py", 594, msg, args, None)


@pytest.mark.parametrize(
    ("record", "level"),
    [
        (arq_record("%6.2fs → %s(%s)%s", 1.01, "dispatch", "", ""), logging.DEBUG),
        (arq_record("%6.2fs ← %s ● %s", 0.02, "dispatch", "{'started': 0}"), logging.DEBUG),
        (arq_record("%6.2fs → %s(%s)%s", 0.01, "execute_run", "7", ""), logging.INFO),
        (arq_record("%6.2fs ↻ %s retrying job in %0.2fs", 0.01, "dispatch", 1.0), logging.INFO),
        (
            arq_record("%6.2fs ! %s max retries %d exceeded", 0.01, "dispatch", 5, level=logging.WARNING),
            logging.WARNING,
        ),
    ],
)
def test_only_the_dispatch_pass_lines_go_to_debug(record: logging.LogRecord, level: int) -> None:
    kept = QuietDispatchLog().filter(record)
    assert record.levelno == level
    # A DEBUG line is dropped unless arq.worker logs DEBUG; everything else is kept.
    assert kept is (level != logging.DEBUG or logging.getLogger("arq.worker").isEnabledFor(logging.DEBUG))
