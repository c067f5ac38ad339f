"""`evaluate`: score a catalog model on the user's test data, without training."""

from __future__ import annotations

from pydantic import BaseModel, Field

from handlers.catalog import require_task
from handlers.data import check_data
from handlers.jobs import submit
from platforms.base import DataRef, EvaluateSpec, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import TASKS, Task
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.runtime import Runtime


class EvaluateRequest(BaseModel):
    model: str
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


def start_evaluation(rt: Runtime, request: EvaluateRequest, *, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    card = rt.platform.get_model(request.model)
    if not TASKS[request.task].evaluate:
        raise PlatformError(f"{request.task} models cannot be evaluated",
                            hint="Evaluate supports " + ", ".join(t for t, s in TASKS.items() if s.evaluate))
    require_task(card, request.task)
    check_data(request.test, request.mapping, max_bytes=max_bytes)
    spec = EvaluateSpec(model=card.ref, task=request.task, test=request.test, mapping=request.mapping.columns,
                        compute=request.compute, batch_size=request.batch_size, max_length=request.max_length,
                        source_lang=request.source_lang, target_lang=request.target_lang)
    return submit(rt, JobRecord(
        id=new_job_id("evaluate"),
        kind="evaluate",
        model=card.ref,
        task=request.task,
        spec=spec.model_dump(mode="json"),
        requester=request.requester,
        reply_to=request.reply_to,
    ), compute=request.compute, instances=1)
