"""`compare` and `leaderboard`: several models evaluated on the same rows, ranked together.

A comparison is a ledger record of its own (kind `compare`) with one evaluation job per model,
queued at once so workers run them in parallel; RQ starts the comparison's finishing job when all
of them have ended (`workers/compare.py`). Models that cannot be evaluated on the task are named
and left out before anything is queued.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from handlers.data import check_data
from handlers.errors import UserError
from handlers.jobs import gpu_hours, job_status
from platforms.base import DataRef, EvaluateSpec, FinetuneSpec, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import TASKS, Task, parse_task
from workers import compare
from workers.compare import BoardInfo, CompareSpec, Leaderboard, Member
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.runtime import Runtime

MIN_MODELS, MAX_MODELS = 2, 8


class CompareRequest(BaseModel):
    models: list[str]
    task: Task
    test: DataRef
    mapping: ColumnMapping
    compute: str | None = None
    batch_size: int = 16
    max_length: int = Field(256, ge=8, le=8192)
    source_lang: str | None = None
    target_lang: str | None = None
    requester: str
    reply_to: ReplyTarget | None = None
    base: str | None = None
    # Models a form already left out (it checks them at its data step), named with the others.
    left_out: dict[str, str] = {}


def checked_count(models: list[str], hint: str = "e.g. `compare model-a model-b model-c`") -> list[str]:
    """The models named, each once, when there are 2 to 8 of them."""
    named = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not MIN_MODELS <= len(named) <= MAX_MODELS:
        raise UserError(f"name {MIN_MODELS} to {MAX_MODELS} models to compare, not {len(named)}", field="models",
                        hint=hint)
    return named


def usable_models(rt: Runtime, models: list[str], task: Task) -> tuple[list[str], dict[str, str]]:
    """The catalog references of the models that can be evaluated on `task`, and why each other
    one is left out; duplicates count once."""
    refs, left_out = [], {}
    for model in dict.fromkeys(m.strip() for m in models if m.strip()):
        try:
            ref = rt.platform.evaluation_card(model, task).ref
        except PlatformError as exc:
            left_out[model] = exc.message
            continue
        if ref not in refs:
            refs.append(ref)
    return refs, left_out


def start_comparison(rt: Runtime, request: CompareRequest, *, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    if not TASKS[request.task].evaluate:
        raise UserError(f"{request.task} models cannot be evaluated", field="task",
                        hint="Compare supports " + ", ".join(t for t, s in TASKS.items() if s.evaluate))
    named = checked_count(request.models)
    refs, left_out = usable_models(rt, named, request.task)
    left_out = {**request.left_out, **left_out}
    if len(refs) < MIN_MODELS:
        reasons = "; ".join(f"{model}: {why}" for model, why in left_out.items())
        raise UserError(f"fewer than {MIN_MODELS} of these models can be evaluated on {request.task} ({reasons})",
                        field="models", hint=f"Pick models for {request.task} with `search task:{request.task}`")
    check_data(request.test, request.mapping, max_bytes=max_bytes)
    hours = sum(gpu_hours(rt, "evaluate", request.compute, 1) for _ in refs)
    if rt.approval_gpu_hours and hours > rt.approval_gpu_hours:
        raise UserError(f"these {len(refs)} evaluations could spend {hours:g} GPU-hours, above the "
                        f"{rt.approval_gpu_hours:g} that need an approver", field="compute",
                        hint="Compare on CPU compute, or evaluate the models one by one (each waits for approval)")
    comparison_id = new_job_id("compare")
    members = [new_job_id("evaluate") for _ in refs]
    spec = CompareSpec(task=request.task, test=request.test, mapping=request.mapping.columns,
                       dataset=compare.dataset_id(request.test, request.mapping.columns), models=refs,
                       members=members, left_out=left_out, compute=request.compute, batch_size=request.batch_size,
                       max_length=request.max_length, source_lang=request.source_lang,
                       target_lang=request.target_lang, base=request.base)
    record = rt.create(JobRecord(
        id=comparison_id, kind="compare", model=" vs ".join(refs), task=request.task,
        spec=spec.model_dump(mode="json"), requester=request.requester, reply_to=request.reply_to,
        gpu_hours=hours,
        result={"members": [Member(job=j, model=m).model_dump(mode="json") for j, m in zip(members, refs)],
                "left_out": left_out},
    ), enqueue=False)
    for job, ref in zip(members, refs, strict=True):
        evaluation = EvaluateSpec(model=ref, task=request.task, test=request.test, mapping=request.mapping.columns,
                                  compute=request.compute, batch_size=request.batch_size,
                                  max_length=request.max_length, source_lang=request.source_lang,
                                  target_lang=request.target_lang, for_comparison=True)
        rt.create(JobRecord(id=job, kind="evaluate", model=ref, task=request.task,
                            spec=evaluation.model_dump(mode="json"), requester=request.requester,
                            parent=comparison_id, trace_id=record.trace_id,
                            gpu_hours=gpu_hours(rt, "evaluate", request.compute, 1)), enqueue=True)
    compare.enqueue_finish(rt, record, spec)
    return record


def rerun_comparison(rt: Runtime, comparison_id: str, requester: str, reply_to: ReplyTarget | None = None,
                     *, channel: str | None = None, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    """The same models, data and settings again (a new comparison, with its own thread), for whoever
    may see the comparison (`job_status`'s rule), so no one re-runs a test file they could not see."""
    record = job_status(rt, comparison_id, requester, channel)
    if record.kind != "compare":
        raise UserError(f"{record.id} is not a comparison", hint="Re-run works on a comparison's results")
    spec = CompareSpec.model_validate(record.spec)
    return start_comparison(rt, CompareRequest(
        models=spec.models, task=Task(spec.task), test=spec.test, mapping=ColumnMapping.build(spec.mapping, spec.task),
        compute=spec.compute, batch_size=spec.batch_size, max_length=spec.max_length, source_lang=spec.source_lang,
        target_lang=spec.target_lang, requester=requester, reply_to=reply_to, base=spec.base), max_bytes=max_bytes)


def compare_with_base(rt: Runtime, finetune_id: str, requester: str, reply_to: ReplyTarget | None = None, *,
                      channel: str | None = None, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    """The base model and its fine-tuned version on the fine-tune's own test rows (its test file,
    or the rows it split off and kept), with per-example flips."""
    record = job_status(rt, finetune_id, requester, channel)
    if record.kind != "finetune" or record.output_model is None:
        raise UserError(f"{record.id} is not a finished fine-tune", hint="Compare with base needs a completed fine-tune")
    spec = FinetuneSpec.model_validate(record.spec)
    held_out = record.result.get("test_data")
    if spec.test is not None:
        test, mapping = spec.test, ColumnMapping.build(spec.mapping, spec.task)
    elif held_out and Path(held_out["path"]).exists():
        test = DataRef.model_validate(held_out)
        mapping = ColumnMapping.build(held_out["mapping"], spec.task)
    else:
        raise UserError(f"the test rows of {record.id} were not kept", field="test",
                        hint=f"Compare on a test file: `compare {spec.model} {record.output_model}`")
    return start_comparison(rt, CompareRequest(
        models=[spec.model, record.output_model], task=spec.task, test=test, mapping=mapping, compute=spec.compute,
        max_length=max(spec.hyperparameters.max_length, 8), source_lang=spec.source_lang,
        target_lang=spec.target_lang, requester=requester, reply_to=reply_to,
        base=rt.platform.evaluation_card(spec.model, spec.task).ref), max_bytes=max_bytes)


def show_leaderboard(rt: Runtime, task: str, dataset: str | None = None) -> Leaderboard:
    """The board of `task` on `dataset` (its id, a prefix of it, or the test file's name), or on the
    dataset most recently evaluated."""
    task = parse_task(task)
    found = compare.boards(rt.redis, task)
    if not found:
        raise UserError(f"no {task} evaluation has finished yet", field="task",
                        hint="Run `compare` or `evaluate` first; every finished evaluation lands on its dataset's board")
    chosen: tuple[str, BoardInfo] | None = next(iter(found.items()))
    if dataset:
        wanted = dataset.strip().lower()
        chosen = next(((key, info) for key, info in found.items()
                       if key.startswith(wanted) or info.name.lower() == wanted), None)
        if chosen is None:
            names = ", ".join(f"{info.name} ({key})" for key, info in list(found.items())[:5])
            raise UserError(f'no {task} board for "{dataset.strip()}"', field="dataset", hint=f"Boards: {names}")
    return compare.leaderboard(rt.redis, task, *chosen)


def recent_leaderboards(rt: Runtime, limit: int = 3) -> list[Leaderboard]:
    """The boards updated most recently, over every task (for the App Home)."""
    found = [(task, key, info) for task, spec in TASKS.items() if spec.evaluate
             for key, info in compare.boards(rt.redis, task).items()]
    found.sort(key=lambda item: item[2].updated_at, reverse=True)
    return [compare.leaderboard(rt.redis, task, key, info) for task, key, info in found[:limit]]
