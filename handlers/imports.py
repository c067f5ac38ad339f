"""`import`: bring a Hugging Face model into the catalog as a new version with a card.

Queued as a job (JobRecord kind "import"): a hub download can take many minutes. The model id,
the task (Azure ML's import task list) and a `--from` folder are checked here, so a bad request is
refused with the reason before anything is recorded or downloaded.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from handlers.errors import UserError
from handlers.jobs import submit
from platforms.base import IMPORT_TASKS, ImportSpec
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.runtime import Runtime


class ImportRequest(BaseModel):
    model_id: str
    task: str
    source: str | None = None
    license: str | None = None
    name: str | None = None
    requester: str
    reply_to: ReplyTarget | None = None


def start_import(rt: Runtime, request: ImportRequest) -> JobRecord:
    task = request.task.strip().lower()
    if task not in IMPORT_TASKS:
        raise UserError(f'"{request.task}" models cannot be imported',
                        hint=f"Import supports: {', '.join(IMPORT_TASKS)}")
    source = None
    if request.source:
        folder = Path(request.source).expanduser().resolve()
        if not folder.is_dir():
            raise UserError(f"{request.source} is not a folder",
                            hint="Give --from the folder of a Hugging Face-format model")
        source = str(folder)
    try:
        spec = ImportSpec(model_id=request.model_id, task=task, source=source, license=request.license,
                          name=request.name)
    except ValidationError as exc:
        raise UserError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    return submit(rt, JobRecord(
        id=new_job_id("import"),
        kind="import",
        model=spec.model_id,
        task=spec.task,
        spec=spec.model_dump(mode="json"),
        requester=request.requester,
        reply_to=request.reply_to,
    ))
