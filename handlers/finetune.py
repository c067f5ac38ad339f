"""`finetune`: check a fine-tune request completely, record it, announce it, queue it.

Everything that can be known before training starts is checked here (model, task, mapping,
split, every row of the data), so a bad request is refused at once with the reason instead of
failing minutes later in a worker, and nothing is recorded or queued for it.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from platforms.base import DataRef, FinetuneSpec, Hyperparameters, Platform, PlatformError
from handlers.data import check_data
from handlers.errors import UserError
from handlers.jobs import submit
from platforms.datasets import ColumnMapping, SplitPlan
from platforms.tasks import LORA_TASKS, TASKS, Task
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.runtime import Runtime


class FinetuneRequest(BaseModel):
    model: str
    task: Task
    train: DataRef
    validation: DataRef | None = None
    test: DataRef | None = None
    split: SplitPlan = SplitPlan()
    mapping: ColumnMapping
    hyperparameters: Hyperparameters = Hyperparameters()
    output_name: str | None = None
    compute: str | None = None
    instances: int = 1
    source_lang: str | None = None
    target_lang: str | None = None
    requester: str
    reply_to: ReplyTarget | None = None


def check_finetunable(task: Task, *, lora: bool = False, platform: Platform | None = None) -> None:
    """Refuse a task that cannot be fine-tuned (before its column mapping is even read)."""
    if not TASKS[task].finetune and task not in (platform.extra_finetune_tasks if platform else ()):
        raise PlatformError(f"{task} models cannot be fine-tuned",
                            hint="Fine-tune supports " + ", ".join(t for t, s in TASKS.items() if s.finetune))
    if lora and task not in LORA_TASKS and not (platform and platform.lora_on_every_task):
        raise PlatformError(f"LoRA applies to {', '.join(LORA_TASKS)}, not {task}",
                            hint="Drop --lora: small encoder models are fine-tuned in full")


def start_finetune(rt: Runtime, request: FinetuneRequest, *, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    check_finetunable(request.task, lora=request.hyperparameters.lora, platform=rt.platform)
    card = rt.platform.finetune_card(request.model, request.task)
    model = card.ref if card else request.model
    request.split.check()
    for ref in (request.train, request.validation, request.test):
        if ref is not None:
            check_data(ref, request.mapping, max_bytes=max_bytes)
    try:
        spec = FinetuneSpec(
        model=model,
        task=request.task,
        train=request.train,
        validation=request.validation,
        test=request.test,
        split=request.split,
        mapping=request.mapping.columns,
        hyperparameters=request.hyperparameters,
        output_name=request.output_name,
        compute=request.compute,
        instances=request.instances,
        source_lang=request.source_lang,
        target_lang=request.target_lang,
        )
    except ValidationError as exc:
        raise UserError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    return submit(rt, JobRecord(
        id=new_job_id("finetune"),
        kind="finetune",
        model=model,
        task=request.task,
        spec=spec.model_dump(mode="json"),
        requester=request.requester,
        reply_to=request.reply_to,
    ), compute=request.compute, instances=request.instances)
