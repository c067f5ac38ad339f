"""The job ledger: fmbot's own record of every job, kept in Redis.

RQ's job hash is an implementation detail that expires; the ledger is what users see (`jobs`,
`status`, App Home) and what notifications are rendered from. A record is written before the user
is told a job is queued, and every state change is written here before it is posted anywhere.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from platforms.base import JobState, Progress
from workers import keys, telemetry
from workers.costs import Estimate

JobKind = Literal["finetune", "evaluate", "deploy", "import", "compare"]
_PREFIX = {"finetune": "ft", "evaluate": "ev", "deploy": "dp", "import": "im", "compare": "cmp"}
SEEN_LIMIT = 64  # records a Ledger remembers as last seen; a worker needs the one job it runs


class DataUse(BaseModel):
    """A dataset a job reads, as checked when it was submitted: which file or registered dataset
    version, its good rows, and the bad rows skipped (how many, the first few with why)."""

    role: Literal["train", "validation", "test"]
    name: str
    dataset: str | None = None
    rows: int = 0
    skipped: int = 0
    skipped_rows: list[str] = []


class ReplyTarget(BaseModel):
    """Where the job was asked for: the surface, the channel (a Teams conversation id), and the
    message its updates go to (Slack: the thread's ts; Teams: the job card's activity id)."""

    channel: str
    thread_ts: str | None = None
    surface: Literal["slack", "teams"] = "slack"


class JobRecord(BaseModel):
    id: str
    kind: JobKind
    state: JobState = JobState.QUEUED
    model: str
    task: str
    spec: dict[str, Any]
    requester: str
    reply_to: ReplyTarget | None = None
    trace_id: str = Field(default_factory=telemetry.current_trace_or_new)
    progress: Progress | None = None
    metrics: dict[str, float] = {}
    output_model: str | None = None
    loss_history: list[tuple[int, float]] = []
    samples: list[dict[str, Any]] = []
    # An evaluation's scored test rows (bounded): what a comparison computes intervals and flips from.
    rows: list[dict[str, Any]] = []
    # The comparison this evaluation belongs to: its changes refresh that record's status message.
    parent: str | None = None
    message: str | None = None
    result: dict[str, Any] = {}
    error: str | None = None
    external_id: str | None = None
    attempts: int = 0
    # Costly work waits for an approver: "pending" until someone allowed to approve clicks Approve.
    approval: Literal["pending", "approved"] | None = None
    approved_by: str | None = None
    gpu_hours: float = 0.0
    data: list[DataUse] = []
    # What it was expected to take and cost before it was queued, and what it took and cost in the end.
    estimate: Estimate | None = None
    actual_seconds: float | None = None
    actual_usd: float | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def elapsed_seconds(self) -> float:
        start = self.started_at or self.created_at
        end = self.finished_at or datetime.now(UTC)
        return max((end - start).total_seconds(), 0.0)

    def public(self) -> dict[str, Any]:
        """The record as shown to users (CLI `--json`, Slack): no internal spec paths, and not the
        hundreds of scored rows a comparison reads."""
        data = self.model_dump(mode="json", exclude={"spec", "rows"})
        data["elapsed_seconds"] = round(self.elapsed_seconds, 1)
        data["estimate_error"] = self.estimate_error
        if self.estimate is not None:
            data["estimate"]["summary"] = self.estimate.summary()
        return data

    @property
    def estimate_error(self) -> float | None:
        """How far the real run time was from the middle of its estimate, as a fraction (0.25: a quarter
        longer), so estimates can be judged; None until a run with an estimate has finished."""
        if self.estimate is None or self.actual_seconds is None or not self.estimate.seconds_mid or self.kind == "deploy":
            return None
        return round(self.actual_seconds / self.estimate.seconds_mid - 1, 3)


class JobNotFound(LookupError):
    pass


class Along(Protocol):
    """Commands that belong to a ledger change (its notice in the outbox), run in the same atomic
    step as the change's write: they land together with it, or not at all."""

    def commands(self, record: JobRecord) -> list[tuple[Any, ...]]:
        """The commands (name and arguments), given the record as changed."""

    def written(self, replies: list[Any]) -> None:
        """Redis's replies to those commands, once they ran."""


# A compare-and-set of one ledger record: KEYS[1] is the record, ARGV[1] its value as read and
# ARGV[2] the new value; the rest of ARGV are commands to run with the write, each as its argument
# count followed by its arguments. Returns {1, replies...} when written, {0, value now} when the
# record changed since it was read. One round trip where WATCH, GET and MULTI/EXEC take three.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return {0, current} end
redis.call('SET', KEYS[1], ARGV[2])
local replies, i = {1}, 3
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  replies[#replies + 1] = redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return replies
"""


def new_job_id(kind: JobKind) -> str:
    return f"{_PREFIX[kind]}-{secrets.token_hex(4)}"


class Ledger:
    """Writes are compare-and-set against the record as this Ledger last read or wrote it: in a
    worker that is the job's current record, so a state change is one round trip to Redis. A
    record someone else changed in between costs one more, never a lost update."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._compare_and_set = redis.register_script(_COMPARE_AND_SET)
        self._seen: OrderedDict[str, bytes | str] = OrderedDict()
        self._seen_lock = threading.Lock()

    def create(self, record: JobRecord, *, along: Along | None = None,
               then: Callable[[Pipeline], None] | None = None) -> JobRecord:
        """Store a new record in one MULTI/EXEC with `along`'s commands (its QUEUED notice) and
        whatever `then` adds to the transaction (its RQ job): a job is recorded, announced and
        queued together or not at all, so none sits "queued" with nothing in the queue."""
        score, raw = record.created_at.timestamp(), record.model_dump_json()
        key = keys.job(record.id)
        commands = along.commands(record) if along is not None else []
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    raise ValueError(f"job {record.id} already exists")
                pipe.multi()
                pipe.set(key, raw)
                pipe.zadd(keys.jobs(), {record.id: score})
                pipe.zadd(keys.user_jobs(record.requester), {record.id: score})
                for command in commands:
                    pipe.execute_command(*command)
                if then is not None:
                    then(pipe)
                replies = pipe.execute()
            except WatchError:
                raise ValueError(f"job {record.id} already exists") from None
        if along is not None:
            along.written(replies[3:3 + len(commands)])
        self._saw(record.id, raw)
        return record

    def get(self, job_id: str) -> JobRecord:
        raw = self.redis.get(keys.job(job_id))
        if raw is None:
            raise JobNotFound(job_id)
        self._saw(job_id, raw)
        return JobRecord.model_validate_json(raw)

    def update(self, job_id: str, change: Callable[[JobRecord], None],
               then: Callable[[Pipeline], None] | None = None) -> JobRecord:
        """Apply `change` to the stored record atomically (optimistic locking); what `then` adds to
        the transaction (an RQ job) is written with it, under WATCH, as `create` does."""

        def changed(record: JobRecord) -> bool:
            change(record)
            return True

        if then is None:
            return self._write(job_id, changed, None)[0]
        key = keys.job(job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFound(job_id)
                    record = JobRecord.model_validate_json(raw)
                    change(record)
                    written = record.model_dump_json()
                    pipe.multi()
                    pipe.set(key, written)
                    then(pipe)
                    pipe.execute()
                except WatchError:
                    continue
                self._saw(job_id, written)
                return record

    def transition(self, job_id: str, state: JobState, *, along: Along | None = None,
                   when: Callable[[JobRecord], bool] | None = None, **fields: Any) -> tuple[JobRecord, bool]:
        """Move a job to `state` unless it is already final; says whether it moved.

        A final state is never left, so a late progress report cannot revive a canceled job and a
        retried delivery cannot announce a second completion. `along` (the move's notice) is
        written in the same atomic step when the job moves. `when` narrows which stored records may
        move (judged in the same compare-and-set).
        """

        def change(record: JobRecord) -> bool:
            if record.state.final or (when is not None and not when(record)):
                return False
            record.state = state
            now = datetime.now(UTC)
            if state == JobState.RUNNING and record.started_at is None:
                record.started_at = now
            if state.final:
                record.finished_at = now
            for name, value in fields.items():
                setattr(record, name, value)
            return True

        return self._write(job_id, change, along)

    def _write(self, job_id: str, change: Callable[[JobRecord], bool], along: Along | None) -> tuple[JobRecord, bool]:
        """`change` the record as last seen (False: nothing to write) and store it with `along`'s
        commands, provided Redis still holds what was seen; else again from what it holds. A "no
        change" is only answered from a record just read, never from a remembered one."""
        key = keys.job(job_id)
        raw, fresh = self._seen.get(job_id), False
        if raw is None:
            raw, fresh = self.redis.get(key), True
        while True:
            if raw is None:
                raise JobNotFound(job_id)
            record = JobRecord.model_validate_json(raw)
            if not change(record):
                if not fresh:
                    raw, fresh = self.redis.get(key), True
                    continue
                self._saw(job_id, raw)
                return record, False
            written = record.model_dump_json()
            args: list[Any] = [raw, written]
            for command in along.commands(record) if along is not None else []:
                args += [len(command), *command]
            stored, *replies = self._compare_and_set(keys=[key], args=args)
            if stored == 1:
                self._saw(job_id, written)
                if along is not None:
                    along.written(replies)
                return record, True
            raw, fresh = replies[0], True

    def _saw(self, job_id: str, raw: bytes | str) -> None:
        with self._seen_lock:
            self._seen[job_id] = raw
            self._seen.move_to_end(job_id)
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)

    def sweep(self, older_than: datetime, *, limit: int = 1000) -> int:
        """Delete up to `limit` records of jobs created and finished before `older_than`, with
        their outbox; returns how many. Jobs not yet final are kept whatever their age."""
        ids = [i.decode() if isinstance(i, bytes) else i
               for i in self.redis.zrangebyscore(keys.jobs(), "-inf", older_than.timestamp(), start=0, num=limit)]
        if not ids:
            return 0
        deleted = 0
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id, raw in zip(ids, self.redis.mget([keys.job(i) for i in ids])):
                if raw is None:
                    pipe.zrem(keys.jobs(), job_id)
                    continue
                record = JobRecord.model_validate_json(raw)
                if not record.state.final or (record.finished_at and record.finished_at > older_than):
                    continue
                pipe.delete(keys.job(job_id), keys.outbox(job_id))
                pipe.zrem(keys.jobs(), job_id)
                pipe.zrem(keys.user_jobs(record.requester), job_id)
                deleted += 1
            pipe.execute()
        return deleted

    def ended(self, job_id: str) -> bool:
        """Whether a job has reached a final state, or is gone (deleted past its retention)."""
        try:
            return self.get(job_id).state.final
        except JobNotFound:
            return True

    def recent(self, *, user: str | None = None, limit: int = 20) -> list[JobRecord]:
        ids = self.redis.zrevrange(keys.user_jobs(user) if user else keys.jobs(), 0, limit - 1)
        if not ids:
            return []
        raws = self.redis.mget([keys.job(i.decode() if isinstance(i, bytes) else i) for i in ids])
        return [JobRecord.model_validate_json(raw) for raw in raws if raw is not None]
