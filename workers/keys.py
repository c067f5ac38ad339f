"""Every Redis key fmbot writes (RQ's own keys live under `rq:`).

    fmbot:job:{id}              JSON JobRecord, the ledger entry of one job
    fmbot:jobs                  sorted set of job ids by creation time
    fmbot:jobs:user:{user}      sorted set of one requester's job ids
    fmbot:idem:{key}            job id claimed by an idempotency key (SET NX, expires)
    fmbot:form:{id}             a Slack form's state too large for private_metadata (expires)
    fmbot:metrics               hash of counters workers add to (jobs by state, durations, retries)
"""

PREFIX = "fmbot"


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def jobs() -> str:
    return f"{PREFIX}:jobs"


def user_jobs(user: str) -> str:
    return f"{PREFIX}:jobs:user:{user}"


def idempotency(key: str) -> str:
    return f"{PREFIX}:idem:{key}"


def form(form_id: str) -> str:
    return f"{PREFIX}:form:{form_id}"


def metrics() -> str:
    return f"{PREFIX}:metrics"
