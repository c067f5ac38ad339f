"""Comparisons: one ledger record over several evaluation jobs, and the leaderboards they feed.

A comparison record (kind `compare`) is created with its member evaluations and an RQ job of its
own id that depends on all of them (`allow_failure`): RQ runs it once every evaluation has ended,
however each ended — completed, failed for the user's reason, or crashed and recovered the way
evaluations recover — so nothing here waits or holds a worker. (A remote evaluation's RQ job ends
once it is submitted to Azure; the finishing job then looks again at the poll interval until every
member's record is final.) It reads the members' records from the ledger (the source of truth, never
a copy) and is idempotent, so RQ's retry of a finishing job whose worker died computes the same result.

While members run, each of their changes refreshes the comparison's status message (one line per
model); the lines are kept on the comparison's own record so the chat views stay pure functions
of one record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from redis import Redis
from rq import Callback, Retry
from rq.job import Dependency

from platforms import comparison
from platforms.base import DataRef, JobState
from platforms.comparison import Disagreement, Flips
from workers import keys
from workers.ledger import JobRecord
from workers.notifier import JobEvent
from workers.queues import RETRY_INTERVALS
from workers.runtime import Runtime

log = logging.getLogger(__name__)
LEADERBOARD_LIMIT = 500  # results kept per dataset, newest first
HASH_CHUNK = 1 << 20


class Member(BaseModel):
    """One model's line on the comparison's status message."""

    job: str
    model: str
    state: JobState = JobState.QUEUED
    fraction: float | None = None
    error: str | None = None


class CompareSpec(BaseModel):
    """What a comparison was asked: the evaluations' shared settings and its member jobs. `base`
    names the model a "Compare with base" measures flips against."""

    task: str
    test: DataRef
    mapping: dict[str, str]
    dataset: str
    models: list[str]
    members: list[str]
    left_out: dict[str, str] = {}
    compute: str | None = None
    batch_size: int = 16
    max_length: int = 256
    source_lang: str | None = None
    target_lang: str | None = None
    base: str | None = None


class Standing(BaseModel):
    model: str
    job: str
    state: JobState
    rank: int | None = None
    metrics: dict[str, float] = {}
    primary: float | None = None
    interval: tuple[float, float] | None = None
    seconds: float = 0.0
    parameters: int | None = None
    error: str | None = None
    # Why a completed model has no interval (its platform could not hand over its scored rows).
    rows_unavailable: str | None = None


class ComparisonResult(BaseModel):
    task: str
    primary: str
    dataset: str
    dataset_name: str
    rows: int
    standings: list[Standing]
    disagreements: list[Disagreement] = []
    disagreement_count: int = 0
    flips: Flips | None = None
    flip_examples: list[Disagreement] = []
    base: str | None = None

    def ordered(self, by: str | None = None) -> list[Standing]:
        """Ranked by the primary metric (as stored), or re-sorted by `by`; failed models last."""
        if not by or by == self.primary:
            return self.standings
        scored = [s for s in self.standings if s.rank is not None and by in s.metrics]
        scored.sort(key=lambda s: comparison.better(by, s.metrics[by]), reverse=True)
        return scored + [s for s in self.standings if s not in scored]

    def without_interval(self) -> list[Standing]:
        """The ranked models whose platform could not hand over their scored rows, with why."""
        return [s for s in self.standings if s.rank is not None and s.rows_unavailable]

    def metric_names(self) -> list[str]:
        return sorted({name for s in self.standings for name in s.metrics})

    @property
    def best(self) -> Standing | None:
        ranked = [s for s in self.standings if s.rank is not None]
        return ranked[0] if ranked else None


def dataset_id(test: DataRef, mapping: dict[str, str]) -> str:
    """What makes two evaluations comparable: the test file's content (not its name) and the
    mapping of its columns. A remote data asset is named by its versioned reference."""
    content = hashlib.sha256()
    if test.path.startswith("azureml:"):
        content.update(test.path.encode())
    else:
        with Path(test.path).open("rb") as stream:
            while chunk := stream.read(HASH_CHUNK):
                content.update(chunk)
    mapped = hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()
    return f"{content.hexdigest()[:12]}-{mapped[:6]}"


def enqueue_finish(rt: Runtime, record: JobRecord, spec: CompareSpec) -> None:
    """The finishing job, under the comparison's own id (so cancelling the comparison withdraws
    it), deferred by RQ until every member has ended."""
    rt.queue.enqueue_call(
        "workers.jobs.finish_comparison", args=(record.id,), job_id=record.id,
        depends_on=Dependency(jobs=spec.members, allow_failure=True),
        timeout=600, result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
        retry=Retry(max=rt.job_retries, interval=list(RETRY_INTERVALS[:rt.job_retries])) if rt.job_retries else None,
        on_failure=Callback("workers.jobs.on_job_failure"), description=f"fmbot comparison {record.id}",
    )


def member_changed(rt: Runtime, record: JobRecord) -> None:
    """Refresh the member's line on its comparison and post the comparison's status message; the
    comparison is running from its first member's start. Best-effort: the result never depends
    on these lines."""
    line = Member(job=record.id, model=record.model, state=record.state,
                  fraction=record.progress.fraction if record.progress else None, error=record.error)

    def change(parent: JobRecord) -> None:
        members = [Member.model_validate(m) for m in parent.result.get("members", [])]
        parent.result = {**parent.result, "members": [
            (line if m.job == record.id else m).model_dump(mode="json") for m in members]}

    parent = rt.ledger.get(record.parent)
    if parent.state.final:
        return
    if record.state != JobState.QUEUED and parent.state == JobState.QUEUED:
        rt.move(parent.id, JobState.RUNNING, JobEvent.STARTED, when=lambda stored: stored.state == JobState.QUEUED)
    parent = rt.ledger.update(parent.id, change)
    rt.notify(parent, JobEvent.PROGRESS)


def _standing(member: JobRecord, task: str, primary: str) -> Standing:
    value = member.metrics.get(primary)
    return Standing(model=member.model, job=member.id, state=member.state, metrics=member.metrics,
                    primary=value, seconds=round(member.elapsed_seconds, 1),
                    parameters=member.result.get("parameters"),
                    error=member.error or (member.message if member.state == JobState.CANCELED else None),
                    rows_unavailable=member.result.get("rows_unavailable"),
                    interval=comparison.bootstrap_interval(task, member.rows) if member.rows else None)


def compare_members(spec: CompareSpec, members: list[JobRecord]) -> ComparisonResult:
    """Rank the completed members by the primary metric (failed ones listed, unranked), with their
    intervals, the rows they disagree on and, for a comparison with a base, the flips."""
    primary = comparison.primary_metric(spec.task)
    standings = [_standing(m, spec.task, primary) for m in members]
    ranked = sorted((s for s in standings if s.state == JobState.COMPLETED and s.primary is not None),
                    key=lambda s: comparison.better(primary, s.primary), reverse=True)
    for rank, standing in enumerate(ranked, start=1):
        standing.rank = rank
    others = [s for s in standings if s.rank is None]
    rows_by_model = {m.model: m.rows for m in members if m.state == JobState.COMPLETED and m.rows}
    found, total = comparison.disagreements(spec.task, rows_by_model)
    result = ComparisonResult(task=spec.task, primary=primary, dataset=spec.dataset, dataset_name=spec.test.name,
                              rows=min((len(r) for r in rows_by_model.values()), default=0),
                              standings=ranked + others, disagreements=found, disagreement_count=total, base=spec.base)
    if spec.base and len(rows_by_model) == 2 and spec.base in rows_by_model:
        after = next(model for model in rows_by_model if model != spec.base)
        before_rows, after_rows = rows_by_model[spec.base], rows_by_model[after]
        result.flips = comparison.flips(spec.task, before_rows, after_rows)
        shown = (result.flips.gained + result.flips.lost)[:comparison.DISAGREEMENT_LIMIT]
        result.flip_examples = [Disagreement(
            index=i, input=str(before_rows[i]["input"]), reference=str(before_rows[i]["reference"]),
            predictions={spec.base: str(before_rows[i]["prediction"]), after: str(after_rows[i]["prediction"])})
            for i in sorted(shown)]
    return result


def finish(rt: Runtime, comparison_id: str) -> dict[str, Any]:
    record = rt.ledger.get(comparison_id)
    if record.state.final:
        return record.public()
    spec = CompareSpec.model_validate(record.spec)
    members = [rt.ledger.get(job) for job in spec.members]
    if not all(member.state.final for member in members):
        # Remote evaluations (Azure ML) end their RQ job once submitted and are polled from then on:
        # look again at the poll interval, holding no worker in between.
        rt.queue.enqueue_in(timedelta(seconds=rt.poll_interval), "workers.jobs.finish_comparison", comparison_id,
                            job_timeout=600, result_ttl=3600, description=f"fmbot comparison {comparison_id}")
        return record.public()
    result = compare_members(spec, members)
    payload = {**record.result, "comparison": result.model_dump(mode="json")}
    best = result.best
    if best is None:
        reasons = "; ".join(f"{s.model}: {s.error or s.state}" for s in result.standings)
        record, _ = rt.move(comparison_id, JobState.FAILED, JobEvent.FAILED, result=payload,
                            error=f"no model finished its evaluation ({reasons})")
    else:
        record, _ = rt.move(comparison_id, JobState.COMPLETED, JobEvent.COMPLETED, result=payload,
                            metrics={result.primary: best.primary}, output_model=best.model)
    return record.public()


# ---------------------------------------------------------------------------- leaderboards


class LeaderboardEntry(BaseModel):
    model: str
    job: str
    metrics: dict[str, float]
    primary: str
    comparison: str | None = None
    finished_at: datetime


class Leaderboard(BaseModel):
    task: str
    dataset: str
    dataset_name: str
    mapping: dict[str, str]
    primary: str
    entries: list[LeaderboardEntry]


class BoardInfo(BaseModel):
    name: str
    mapping: dict[str, str]
    updated_at: datetime


def record_evaluation(redis: Redis, record: JobRecord) -> None:
    """Enter a completed evaluation on its dataset's board (every evaluation, in a comparison or
    not, so a board ranks all that were ever run on the same rows)."""
    spec = record.spec
    test = DataRef.model_validate(spec["test"])
    try:
        dataset = dataset_id(test, spec["mapping"])
    except OSError:
        log.warning("no leaderboard entry for %s: its test file %s is gone", record.id, test.path)
        return
    entry = LeaderboardEntry(model=record.model, job=record.id, metrics=record.metrics,
                             primary=comparison.primary_metric(record.task), comparison=record.parent,
                             finished_at=record.finished_at or datetime.now(UTC))
    info = BoardInfo(name=test.name, mapping=spec["mapping"], updated_at=entry.finished_at)
    with redis.pipeline() as pipe:
        pipe.lpush(keys.leaderboard(record.task, dataset), entry.model_dump_json())
        pipe.ltrim(keys.leaderboard(record.task, dataset), 0, LEADERBOARD_LIMIT - 1)
        pipe.hset(keys.leaderboards(record.task), dataset, info.model_dump_json())
        pipe.execute()


def boards(redis: Redis, task: str) -> dict[str, BoardInfo]:
    """The datasets `task` has boards for, most recently updated first."""
    found = {(k.decode() if isinstance(k, bytes) else k): BoardInfo.model_validate_json(v)
             for k, v in redis.hgetall(keys.leaderboards(task)).items()}
    return dict(sorted(found.items(), key=lambda item: item[1].updated_at, reverse=True))


def leaderboard(redis: Redis, task: str, dataset: str, info: BoardInfo) -> Leaderboard:
    """Every result on the dataset ranked by the task's primary metric; equal models' newest
    results first (the list is kept newest first and the sort is stable)."""
    primary = comparison.primary_metric(task)
    entries = [LeaderboardEntry.model_validate_json(raw)
               for raw in redis.lrange(keys.leaderboard(task, dataset), 0, -1)]
    entries = [e for e in entries if primary in e.metrics]
    entries.sort(key=lambda e: comparison.better(primary, e.metrics[primary]), reverse=True)
    return Leaderboard(task=task, dataset=dataset, dataset_name=info.name, mapping=info.mapping, primary=primary,
                       entries=entries)


def after_change(rt: Runtime, record: JobRecord, event: JobEvent) -> None:
    """What a job's change means beyond its own thread: its comparison's status line, and a board
    entry for a completed evaluation. A `Runtime` observer (`bot/bootstrap.py` installs it)."""
    if record.kind != "evaluate":
        return
    if event == JobEvent.COMPLETED:
        record_evaluation(rt.redis, record)
    if record.parent and event != JobEvent.QUEUED:
        member_changed(rt, record)
