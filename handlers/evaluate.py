"""`evaluate`: score a catalog model on the user's test data, without training."""

from __future__ import annotations

from typing import ClassVar

from handlers.data import check_data, data_use, resolve_registered
from handlers.jobs import JobRequest, submit
from platforms.base import EvaluateSpec, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import TASKS
from workers.ledger import JobKind, JobRecord
from workers.runtime import Runtime


class EvaluateRequest(JobRequest):
    kind: ClassVar[JobKind] = "evaluate"
    spec: EvaluateSpec


def prepare_evaluation(rt: Runtime, request: EvaluateRequest, *,
                       max_bytes: int = 100 * 1024 * 1024) -> EvaluateRequest:
    """Every check an evaluation gets before it is recorded, and the request as it will be recorded
    (as `finetune.prepare_finetune`). Scoring reads less than training: QA needs no answer_start."""
    spec = request.spec
    if not TASKS[spec.task].evaluate:
        raise PlatformError(f"{spec.task} models cannot be evaluated",
                            hint="Evaluate supports " + ", ".join(t for t, s in TASKS.items() if s.evaluate))
    card = rt.platform.evaluation_card(spec.model, spec.task)
    spec = resolve_registered(rt, spec)
    summary = check_data(spec.test, ColumnMapping.build(spec.mapping, spec.task), max_bytes=max_bytes,
                         training=False, rows=spec.rows)
    return request.model_copy(update={"spec": spec.model_copy(update={"model": card.ref}),
                                      "data": [data_use("test", spec.test, summary)]})


def start_evaluation(rt: Runtime, request: EvaluateRequest, *, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    return submit(rt, prepare_evaluation(rt, request, max_bytes=max_bytes))
