from prometheus_client import Counter

JOBS_STARTED = Counter("herald_jobs_started_total", "Jobs started by this process.", ["function"])
JOBS_FINISHED = Counter("herald_jobs_finished_total", "Jobs finished by this process.", ["function"])
