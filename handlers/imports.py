"""`import`: bring a Hugging Face model into the catalog as a new version with a card.

Queued as a job (JobRecord kind "import"): a hub download can take many minutes. The model id,
the task (Azure ML's import task list), a `--from` folder and, where the policy limits it, the
model's size (on disk, or from the hub's file sizes) are checked here, so a bad request is refused
with the reason before anything is recorded or downloaded.
"""

from __future__ import annotations

from pathlib import Path

from typing import ClassVar

from handlers import limits
from handlers.errors import UserError
from handlers.jobs import JobRequest, submit
from platforms.base import ImportSpec
from workers.ledger import JobKind, JobRecord
from workers.runtime import Runtime


class ImportRequest(JobRequest):
    kind: ClassVar[JobKind] = "import"
    spec: ImportSpec


def start_import(rt: Runtime, request: ImportRequest) -> JobRecord:
    spec = request.spec
    folder = None
    if spec.source:
        folder = Path(spec.source).expanduser().resolve()
        if not folder.is_dir():
            raise UserError(f"{spec.source} is not a folder",
                            hint="Give --from the folder of a Hugging Face-format model", field="source")
    channel = request.reply_to.channel if request.reply_to else None
    max_bytes = limits.check_import(request.requester, channel, folder, None if folder else spec.model_id)
    update = {"max_bytes": max_bytes} | ({"source": str(folder)} if folder else {})
    request = request.model_copy(update={"spec": spec.model_copy(update=update)})
    return submit(rt, request)
