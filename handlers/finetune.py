"""`finetune`: check a fine-tune request completely, record it, announce it, queue it.

Everything that can be known before training starts is checked here (model, task, mapping,
split, every row of the data), so a bad request is refused at once with the reason instead of
failing minutes later in a worker, and nothing is recorded or queued for it.
"""

from __future__ import annotations

from typing import ClassVar

from platforms.base import FinetuneSpec, Platform, PlatformError
from handlers.data import check_data, data_use, resolve_registered
from handlers.jobs import JobRequest, submit
from platforms.datasets import ColumnMapping
from platforms.tasks import LORA_TASKS, TASKS, Task
from workers.ledger import JobKind, JobRecord
from workers.runtime import Runtime


class FinetuneRequest(JobRequest):
    kind: ClassVar[JobKind] = "finetune"
    spec: FinetuneSpec


def check_finetunable(task: Task, *, lora: bool = False, platform: Platform | None = None) -> None:
    """Refuse a task that cannot be fine-tuned (before its column mapping is even read)."""
    if not TASKS[task].finetune and task not in (platform.extra_finetune_tasks if platform else ()):
        raise PlatformError(f"{task} models cannot be fine-tuned",
                            hint="Fine-tune supports " + ", ".join(t for t, s in TASKS.items() if s.finetune))
    if lora and task not in LORA_TASKS and not (platform and platform.lora_on_every_task):
        raise PlatformError(f"LoRA applies to {', '.join(LORA_TASKS)}, not {task}",
                            hint="Drop --lora: small encoder models are fine-tuned in full")


def prepare_finetune(rt: Runtime, request: FinetuneRequest, *,
                     max_bytes: int = 100 * 1024 * 1024) -> FinetuneRequest:
    """Every check a fine-tune gets before it is recorded, and the request as it will be recorded:
    registered datasets pinned to their version, each file's rows and skipped rows noted."""
    spec = request.spec
    check_finetunable(spec.task, lora=spec.hyperparameters.lora, platform=rt.platform)
    card = rt.platform.finetune_card(spec.model, spec.task)
    spec.split.check()
    mapping = ColumnMapping.build(spec.mapping, spec.task)
    spec = resolve_registered(rt, spec)
    uses = [data_use(role, ref, check_data(ref, mapping, max_bytes=max_bytes, rows=spec.rows))
            for role, ref in (("train", spec.train), ("validation", spec.validation), ("test", spec.test))
            if ref is not None]
    if card:
        spec = spec.model_copy(update={"model": card.ref})
    return request.model_copy(update={"spec": spec, "data": uses})


def start_finetune(rt: Runtime, request: FinetuneRequest, *, max_bytes: int = 100 * 1024 * 1024) -> JobRecord:
    return submit(rt, prepare_finetune(rt, request, max_bytes=max_bytes))
