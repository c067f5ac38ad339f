"""The Bolt app: `/fm` and the forms it opens, wired to the handlers.

Listeners stay thin: they read the request, call a handler, and render its typed result with a
view. Anything that may take long runs after `ack()`, which Bolt answers at once while the
listener keeps running on its thread pool.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from slack_bolt import App
from slack_sdk import WebClient

from bot.settings import Settings
from bot.slack.files import download_upload
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.views import catalog as catalog_views
from bot.slack.views.finetune import FinetuneForm, FormContext, finetune_modal, read_finetune_form
from bot.slack.views.jobs import headline, progress_bar
from handlers import catalog, jobs
from handlers.errors import UserError, user_message
from handlers.finetune import FinetuneRequest, start_finetune
from handlers.registry import COMMANDS, closest_command
from platforms.base import DataRef, Hyperparameters, ModelNotFound, PlatformError
from platforms.datasets import ColumnMapping, DatasetError, SplitPlan, guess_mapping, read_columns
from platforms.tasks import parse_task
from workers.ledger import ReplyTarget
from workers.runtime import Runtime

log = logging.getLogger(__name__)
ACK_BUDGET_SECONDS = 2.0
MAX_COMMAND_CHARS = 2000


class FormErrors(Exception):
    """Problems to show inline on the form, keyed by block id."""

    def __init__(self, errors: dict[str, str]):
        self.errors = {block: text[:150] for block, text in errors.items()}
        super().__init__(errors)


def help_text() -> str:
    lines = ["*fmbot* — foundation models from Slack. Commands:"]
    lines += [f"• `/fm {c.usage}` — {c.summary}. e.g. `{c.example}`" for c in COMMANDS.values()]
    return "\n".join(lines)


def create_app(settings: Settings, rt: Runtime, client: WebClient, *, verify_requests: bool = True) -> App:
    """`verify_requests` is off only for Socket Mode, whose messages come over an authenticated socket."""
    app = App(
        client=client,
        signing_secret=settings.secret(settings.slack_signing_secret) or "",
        token_verification_enabled=False,
        request_verification_enabled=verify_requests,
        process_before_response=False,
    )
    preparer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fmbot-prepare")

    @app.command("/fm")
    def on_fm(ack, command, client):
        text = (command.get("text") or "").strip()
        if len(text) > MAX_COMMAND_CHARS:
            ack(response_type="ephemeral",
                text=f"That command is {len(text):,} characters long; the limit is {MAX_COMMAND_CHARS:,}. "
                     "Attach long text as a file instead.")
            return
        name, _, rest = text.partition(" ")
        name, rest = name.lower(), rest.strip()
        try:
            if name in ("", "help"):
                ack(response_type="ephemeral", text=help_text())
            elif name in ("search", "models"):
                words, task = [], None
                for word in rest.split():
                    if word.startswith("task:"):
                        task = parse_task(word.removeprefix("task:"))
                    else:
                        words.append(word)
                found = catalog.search_models(rt, " ".join(words), task)
                ack(response_type="ephemeral", **catalog_views.model_list(found, "Models"))
            elif name == "card":
                if not rest:
                    raise UserError("say which model", hint=f"Usage: /fm {COMMANDS['card'].usage}")
                ack(response_type="ephemeral", **catalog_views.model_card(catalog.model_card(rt, rest)))
            elif name == "finetune":
                ack()
                context = FormContext(channel=command["channel_id"], user=command["user_id"])
                client.views_open(trigger_id=command["trigger_id"],
                                  view=finetune_modal(rt.platform.list_models(), context, rest or None))
            elif name == "jobs":
                records = jobs.list_jobs(rt, user=command["user_id"])
                lines = [f"{headline(r)} {progress_bar(r)}" for r in records] or ["You have no jobs yet."]
                ack(response_type="ephemeral", text="\n".join(lines)[:3000])
            elif name == "status":
                record = jobs.job_status(rt, rest)
                ack(response_type="ephemeral", text=f"{headline(record)}\n{progress_bar(record)}".strip())
            else:
                guess = closest_command(name)
                hint = f"Did you mean `/fm {guess.usage}`?" if guess else "Try `/fm help`."
                ack(response_type="ephemeral", text=f"`{name}` is not an fmbot command. {hint}")
        except Exception as exc:
            message = user_message(exc)
            if message is None:
                log.exception("/fm %s failed", name)
                message = "Something went wrong on our side; the admins can find it in the logs."
            ack(response_type="ephemeral", text=f":warning: {message}")

    def prepare_finetune(form: FinetuneForm, context: FormContext) -> FinetuneRequest:
        """Download and check everything the form names; raise FormErrors for the form."""
        errors: dict[str, str] = {}
        try:
            card = rt.platform.get_model(form.model or "")
        except (ModelNotFound, PlatformError) as exc:
            raise FormErrors({BlockId.MODEL: str(exc)}) from None
        task = parse_task(form.task or "text-classification")
        if task not in card.tasks:
            errors[BlockId.TASK] = f"{card.ref} does not support {task}; its tasks: {', '.join(card.tasks)}"
        split = SplitPlan(validation=form.validation_split / 100, test=form.test_split / 100)
        try:
            split.check()
        except DatasetError as exc:
            errors[BlockId.TEST_SPLIT] = str(exc)
        if not form.files:
            errors[BlockId.TRAIN_FILE] = "Upload a training file."
        if errors:
            raise FormErrors(errors)
        upload = form.files[0]
        name = upload.get("name") or "upload"
        try:
            path = download_upload(settings, upload, Path(settings.fmbot_data_dir))
        except UserError as exc:
            raise FormErrors({BlockId.TRAIN_FILE: str(exc)}) from None
        try:
            if form.mapping.strip():
                mapping = ColumnMapping.parse(form.mapping, task)
            else:
                columns = read_columns(path, name)
                mapping = ColumnMapping.build(guess_mapping(columns, task), task)
        except DatasetError as exc:
            block = BlockId.TRAIN_FILE if exc.file else BlockId.MAPPING
            raise FormErrors({block: str(exc)}) from None
        return FinetuneRequest(
            model=card.ref,
            task=task,
            train=DataRef(path=str(path), name=name),
            split=split,
            mapping=mapping,
            hyperparameters=Hyperparameters(epochs=form.epochs),
            requester=context.user,
            reply_to=ReplyTarget(channel=context.channel),
        )

    @app.view(CallbackId.FINETUNE)
    def on_finetune_submit(ack, view, body, client):
        context = FormContext.model_validate_json(view["private_metadata"])
        try:
            form = read_finetune_form(view)
        except ValueError as exc:
            ack(response_action="errors", errors={BlockId.EPOCHS: str(exc)[:150]})
            return
        future = preparer.submit(lambda: submit_checked(prepare_finetune(form, context)))
        try:
            future.result(timeout=ACK_BUDGET_SECONDS)
        except FutureTimeout:
            ack()
            _finish_late(future, client, context)
            return
        except FormErrors as exc:
            ack(response_action="errors", errors=exc.errors)
            return
        except Exception as exc:
            ack()
            _tell(client, context, exc)
            return
        ack()

    def submit_checked(request: FinetuneRequest) -> None:
        """Validate every row before the job exists, so a bad file is refused, not recorded."""
        try:
            start_finetune(rt, request, max_bytes=settings.max_upload_bytes)
        except (DatasetError, UserError) as exc:
            raise FormErrors({BlockId.TRAIN_FILE: str(exc)}) from None
        except PlatformError as exc:
            raise FormErrors({BlockId.MODEL: str(exc)}) from None

    def _finish_late(future, client, context: FormContext) -> None:
        try:
            future.result()
        except FormErrors as exc:
            _tell(client, context, UserError("; ".join(exc.errors.values())))
        except Exception as exc:
            _tell(client, context, exc)

    def _tell(client, context: FormContext, exc: BaseException, *, action: str = "started") -> None:
        message = user_message(exc)
        if message is None:
            log.exception("request failed", exc_info=exc)
            message = "Something went wrong on our side; the admins can find it in the logs."
        client.chat_postEphemeral(channel=context.channel, user=context.user,
                                  text=f":warning: The job was not {action}: {message}")

    @app.action(ActionId.CANCEL_JOB)
    def on_cancel(ack, body, client):
        ack()
        user, job_id = body["user"]["id"], body["actions"][0]["value"]
        try:
            jobs.cancel_job(rt, job_id, user)
        except Exception as exc:
            channel = body.get("channel", {}).get("id")
            if channel:
                _tell(client, FormContext(channel=channel, user=user), exc, action="canceled")

    return app

