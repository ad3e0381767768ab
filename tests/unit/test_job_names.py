"""Every job name jobs/queue.py enqueues is a function the worker registers, and the other way round."""

from jobs.queue import JOB_NAMES
from jobs.worker import FUNCTIONS


def test_queue_and_worker_agree_on_job_names() -> None:
    registered = {getattr(f, "name", None) or f.__name__ for f in FUNCTIONS}
    assert registered == set(JOB_NAMES)
