"""`/fm <subcommand>`: parse, call the handler, answer in the ack (or open a form).

Answers that are quick (catalog, ledger) go back in the ack itself as ephemeral messages; forms
open with `views.open` right after the ack (`SlackContext.after_ack`), since a trigger id is valid
for three seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot import observability
from bot.slack.context import SlackContext
from bot.slack.deploy import command_deploy, command_endpoints
from bot.slack.forms import open_form
from bot.slack.imports import command_import
from bot.slack.tryout import command_try
from bot.slack.limits import clip
from bot.slack.views import catalog as catalog_views
from bot.slack.views.jobs import headline, progress_bar
from handlers import catalog, jobs
from handlers.errors import UserError, user_message
from handlers.registry import COMMANDS, closest_command
from platforms.tasks import parse_task

log = logging.getLogger(__name__)
MAX_COMMAND_CHARS = 2000


def help_text() -> str:
    lines = ["*fmbot* — foundation models from Slack. Commands:"]
    lines += [f"• `/fm {c.usage}` — {c.summary}. e.g. `{c.example}`" for c in COMMANDS.values()]
    return "\n".join(lines)


def _usage(name: str) -> str:
    return f"Usage: `/fm {COMMANDS[name].usage}`"


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.rt

    def search(ack: Callable, command: dict, rest: str, client: Any) -> None:
        words, task = [], None
        for word in rest.split():
            if word.startswith("task:"):
                task = parse_task(word.removeprefix("task:"))
            else:
                words.append(word)
        found = catalog.search_models(rt, " ".join(words), task)
        ack(response_type="ephemeral", **catalog_views.search_results(found, " ".join(words), task))

    def card(ack: Callable, command: dict, rest: str, client: Any) -> None:
        if not rest:
            raise UserError("say which model", hint=_usage("card"))
        ack(response_type="ephemeral", **catalog_views.model_card(catalog.model_card(rt, rest)))

    def form(kind: str) -> Callable:
        def open_kind(ack: Callable, command: dict, rest: str, client: Any) -> None:
            if rest:
                rt.platform.get_model(rest)
            ack()
            ctx.after_ack(open_form, ctx, client, command["trigger_id"], kind, command["channel_id"],
                          command["user_id"], rest or None)
        return open_kind

    def job_list(ack: Callable, command: dict, rest: str, client: Any) -> None:
        records = jobs.list_jobs(rt, user=command["user_id"])
        lines = [f"{headline(r)} {progress_bar(r)}" for r in records] or ["You have no jobs yet."]
        ack(response_type="ephemeral", text=clip("\n".join(lines), 3000))

    def status(ack: Callable, command: dict, rest: str, client: Any) -> None:
        if not rest:
            raise UserError("say which job", hint=_usage("status"))
        record = jobs.job_status(rt, rest)
        details = [headline(record), progress_bar(record)]
        if record.error:
            details.append(f"Error: {record.error}")
        ack(response_type="ephemeral", text="\n".join(d for d in details if d))

    def cancel(ack: Callable, command: dict, rest: str, client: Any) -> None:
        if not rest:
            raise UserError("say which job", hint=_usage("cancel"))
        record = jobs.cancel_job(rt, rest, command["user_id"])
        ack(response_type="ephemeral", text=f"Canceled {headline(record)}")

    def quota(ack: Callable, command: dict, rest: str, client: Any) -> None:
        options = rt.platform.compute_options("any")
        if rest:
            options = [o for o in options if rest.lower() in o.name.lower()]
            if not options:
                raise UserError(f'no compute named "{rest}"', hint="See `/fm quota` for what exists")
        ack(response_type="ephemeral", text="\n".join(f"• `{o.name}` — {o.label}" for o in options))

    def with_ctx(function: Callable) -> Callable:
        return lambda ack, command, rest, client: function(ctx, ack, command, rest, client)

    dispatch: dict[str, Callable] = {
        "search": search, "models": search, "card": card,
        "finetune": form("finetune"), "evaluate": form("evaluate"),
        "deploy": with_ctx(command_deploy), "endpoints": with_ctx(command_endpoints),
        "import": with_ctx(command_import),
        "jobs": job_list, "status": status, "cancel": cancel, "quota": quota,
    }

    @app.command("/fm")
    def on_fm(ack, command, client, respond):
        text = (command.get("text") or "").strip()
        if len(text) > MAX_COMMAND_CHARS:
            ack(response_type="ephemeral",
                text=f"That command is {len(text):,} characters long; the limit is {MAX_COMMAND_CHARS:,}. "
                     "Attach long text as a file instead.")
            return
        name, _, rest = text.partition(" ")
        name, rest = name.lower(), rest.strip()
        handler = dispatch.get(name)
        label, trace = observability.begin_command(name, dispatch)
        try:
            if name in ("", "help"):
                ack(response_type="ephemeral", text=help_text())
            elif name == "try":
                command_try(ctx, ack, command, rest, client, respond)
            elif handler is not None:
                handler(ack, command, rest, client)
            else:
                guess = closest_command(name)
                hint = f"Did you mean `/fm {guess.usage}`?" if guess else "See `/fm help`."
                ack(response_type="ephemeral", text=f"`{name}` is not an fmbot command. {hint}")
        except Exception as exc:
            observability.count_command(label, "refused" if user_message(exc) else "error")
            ack(response_type="ephemeral", text=f":warning: {ctx.explain(exc, trace)}")
        else:
            observability.count_command(label, "ok")
