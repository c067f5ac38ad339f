"""Every Redis key fmbot writes (RQ's own keys live under `rq:`).

    fmbot:job:{id}              JSON JobRecord, the ledger entry of one job
    fmbot:jobs                  sorted set of job ids by creation time
    fmbot:jobs:user:{user}      sorted set of one requester's job ids
    fmbot:idem:{key}            claim of one Slack delivery or submission (SET NX, expires; workers/idempotency.py)
    fmbot:outbox:{job}          list of JSON notifications of one job not yet taken by Slack, oldest first
    fmbot:outbox:lock:{job}     JSON holder (workers/holders.py) of the one process delivering that list (SET NX, expires)
    fmbot:endpoint:{name}       JSON record of one local endpoint, its key only as a hash (SET NX claims the name)
    fmbot:endpoints             set of local endpoint names
    fmbot:endpoint:key:{name}   a local endpoint's new key until its owner picks it up (GETDEL, expires)
    fmbot:form:{id}             a Slack form's state too large for private_metadata (expires)
    fmbot:teams:form:{id}       JSON state of one Teams dialog, bound to whoever opened it (expires)
    fmbot:teams:conversation:{id}  JSON conversation reference of one Teams conversation, for proactive posts
    fmbot:teams:files:{id}      list of JSON files shared in one Teams conversation, newest first (expires)
    fmbot:teams:user:{aad}      JSON {mri, name} of one Teams user, for mentions and per-user card refreshes
    fmbot:teams:offer:{id}      JSON file offer of one Teams file consent card: job, user, chat (deleted by its answer, expires)
    fmbot:uploads               hash: path of a dataset a chat user uploaded → JSON {user, bytes, at, job} (workers/storage.py)
    fmbot:uploads:user:{user}   set of the paths in fmbot:uploads one user uploaded
    fmbot:uploaded:{user}:{day} bytes one user uploaded on one UTC day (expires after two days)
    fmbot:storage:sweep         lock (SET NX, expires) of the one worker deleting uploads and endpoint logs past their retention
    fmbot:try:requests          list of JSON try requests, oldest first, taken by the warm try services (bot/try_service.py)
    fmbot:try:reply:{id}        list of JSON answers to one try request: claimed, then the result (expires)
    fmbot:try:alive             set while at least one try service runs (expires unless refreshed)
    fmbot:try:rate:{user}:{min} tries of one user in one minute (expires)
    fmbot:slack:answers         list of JSON `/fm` deliveries the bot acked, oldest first, taken by the answerers (bot/slack/answerer.py)
    fmbot:slack:answering:{id}  list of the deliveries one answerer has taken and not yet answered
    fmbot:slack:answerers       sorted set of answerer ids by the time their heartbeat lapses
    fmbot:ledger:sweep          lock (SET NX, expires) of the one worker deleting records past their retention
    fmbot:leaderboard:{task}:{dataset}  list of JSON evaluation results on one dataset (content hash +
                                mapping), newest first, trimmed (workers/compare.py)
    fmbot:leaderboards:{task}   hash dataset id → JSON {name, mapping, updated_at}: the datasets a task has boards for
    fmbot:metrics               hash of counters workers and answerers add to (jobs by state, durations, retries, commands)
    fmbot:throughput:{key}      list of the newest samples/s of one model family on one compute ({kind}:{family}:{compute})
    fmbot:spend:{YYYY-MM}       hash of one month's spend: job id or endpoint:{name} → JSON Charge (workers/costs.py)
    fmbot:timer:{kind}:{subject}  JSON record of one pending timer (approval expiry, endpoint TTL, idle check, digest)
    fmbot:timer:fired:{id}      marker (SET NX, expires) that one firing of a timer ran, so it runs once across workers
    fmbot:lease:{endpoint}      JSON lease of one endpoint: its deploy job, owner, expiry, last request seen
    fmbot:digest:channels       hash of the channels that opted in to the cost digest: channel → JSON {target, since}
    fmbot:azure:catalog         JSON {fetched_at, cards}: the Azure ML registry listing (written by
                                platforms/azureml/catalog.py, which may not import this module)
    fmbot:azure:catalog:refresh lock (SET NX, expires) held while one process refreshes that listing

The three endpoint keys are built in `platforms/local/endpoints.py`, since platforms import nothing
from workers.
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


def outbox(job_id: str) -> str:
    return f"{PREFIX}:outbox:{job_id}"


def outbox_lock(job_id: str) -> str:
    return f"{PREFIX}:outbox:lock:{job_id}"


def form(form_id: str) -> str:
    return f"{PREFIX}:form:{form_id}"


def ledger_sweep() -> str:
    return f"{PREFIX}:ledger:sweep"


def leaderboard(task: str, dataset: str) -> str:
    return f"{PREFIX}:leaderboard:{task}:{dataset}"


def leaderboards(task: str) -> str:
    return f"{PREFIX}:leaderboards:{task}"


def metrics() -> str:
    return f"{PREFIX}:metrics"


def teams_conversation(conversation_id: str) -> str:
    return f"{PREFIX}:teams:conversation:{conversation_id}"


def teams_files(conversation_id: str) -> str:
    return f"{PREFIX}:teams:files:{conversation_id}"


def teams_user(aad_object_id: str) -> str:
    return f"{PREFIX}:teams:user:{aad_object_id}"


def teams_offer(offer_id: str) -> str:
    return f"{PREFIX}:teams:offer:{offer_id}"


def teams_form(form_id: str) -> str:
    return f"{PREFIX}:teams:form:{form_id}"


def uploads() -> str:
    return f"{PREFIX}:uploads"


def user_uploads(user: str) -> str:
    return f"{PREFIX}:uploads:user:{user}"


def uploaded_on(user: str, day: str) -> str:
    return f"{PREFIX}:uploaded:{user}:{day}"


def storage_sweep() -> str:
    return f"{PREFIX}:storage:sweep"


def try_requests() -> str:
    return f"{PREFIX}:try:requests"


def try_reply(request_id: str) -> str:
    return f"{PREFIX}:try:reply:{request_id}"


def try_alive() -> str:
    return f"{PREFIX}:try:alive"


def slack_answers() -> str:
    return f"{PREFIX}:slack:answers"


def slack_answering(answerer: str) -> str:
    return f"{PREFIX}:slack:answering:{answerer}"


def slack_answerers() -> str:
    return f"{PREFIX}:slack:answerers"


def try_rate(user: str, minute: int) -> str:
    return f"{PREFIX}:try:rate:{user}:{minute}"


def teams_form_answer(form_id: str) -> str:
    """A dialog step's answer that was still being worked out when its invoke had to be answered."""
    return f"{PREFIX}:teams:form:{form_id}:answer"


def throughput(key: str) -> str:
    return f"{PREFIX}:throughput:{key}"


def spend(month: str) -> str:
    return f"{PREFIX}:spend:{month}"


def timer(kind: str, subject: str) -> str:
    return f"{PREFIX}:timer:{kind}:{subject}"


def timer_fired(timer_id: str) -> str:
    return f"{PREFIX}:timer:fired:{timer_id}"


def lease(endpoint: str) -> str:
    return f"{PREFIX}:lease:{endpoint}"


def digest_channels() -> str:
    return f"{PREFIX}:digest:channels"
