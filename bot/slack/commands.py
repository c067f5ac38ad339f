"""`/fm <subcommand>`: ack empty, then parse, call the handler and answer (or open a form).

Every answer goes through the command's response URL as an ephemeral message, after the ack
(`SlackContext.after_ack`); a form opens with `views.open` there too, well within the three seconds
its trigger id is valid.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.context.respond import Respond

from bot import observability
from bot.slack.compare import command_leaderboard
from bot.slack.context import SlackContext, SlashCommand
from bot.slack.data import command_data
from bot.slack.costs import command_costs
from bot.slack.deploy import command_deploy, command_endpoints, command_rotate_key
from bot.slack.forms import open_form
from bot.slack.imports import command_import
from bot.slack.tryout import command_try
from bot.slack.limits import clip
from bot.slack.views import catalog as catalog_views
from bot.slack.views.jobs import headline, progress_bar
from bot.slack.views.mrkdwn import escape
from handlers import catalog, compare, jobs
from handlers.errors import UserError, user_message
from handlers.registry import PREFIX, Surface, closest_command, lookup, on, usage_hint
from platforms.tasks import parse_task

log = logging.getLogger(__name__)
MAX_COMMAND_CHARS = 2000
SLACK = Surface.SLACK


def help_text() -> str:
    lines = ["*fmbot* — foundation models from Slack. Commands:"]
    lines += [f"• `/fm {c.usage}` — {c.summary}. e.g. `/fm {c.example}`" for c in on(SLACK)]
    return "\n".join(lines)


def command_help(cmd: SlashCommand) -> None:
    cmd.answer(text=help_text())


def command_search(cmd: SlashCommand) -> None:
    words, task = [], None
    for word in cmd.rest.split():
        if word.startswith("task:"):
            task = parse_task(word.removeprefix("task:"))
        else:
            words.append(word)
    found = catalog.search_models(cmd.ctx.rt, " ".join(words), task)
    cmd.answer(**catalog_views.search_results(found, " ".join(words), task))


def command_card(cmd: SlashCommand) -> None:
    if not cmd.rest:
        raise UserError("say which model", hint=usage_hint("card", SLACK))
    cmd.answer(**catalog_views.model_card(catalog.model_card(cmd.ctx.rt, cmd.rest)))


def form_command(kind: str) -> Callable[[SlashCommand], None]:
    def open_kind(cmd: SlashCommand) -> None:
        if cmd.rest:
            cmd.ctx.rt.platform.get_model(cmd.rest)
        open_form(cmd.ctx, cmd.client, cmd.trigger_id, kind, cmd.channel, cmd.user, cmd.rest or None)
    return open_kind


def command_compare(cmd: SlashCommand) -> None:
    """The evaluate form, once, for every model named; the form's data step checks them."""
    models = compare.checked_count(cmd.rest.split(), hint=f"{usage_hint('compare', SLACK)}, or tick models on "
                                                          "`/fm search` and press Compare")
    open_form(cmd.ctx, cmd.client, cmd.trigger_id, "compare", cmd.channel, cmd.user, None, models)


def command_jobs(cmd: SlashCommand) -> None:
    records = jobs.list_jobs(cmd.ctx.rt, user=cmd.user)
    lines = [f"{headline(r)} {progress_bar(r)}" for r in records] or ["You have no jobs yet."]
    cmd.answer(text=clip("\n".join(lines), 3000))


def command_status(cmd: SlashCommand) -> None:
    if not cmd.rest:
        raise UserError("say which job", hint=usage_hint("status", SLACK))
    record = jobs.job_status(cmd.ctx.rt, cmd.rest, cmd.user, cmd.channel)
    details = [headline(record), progress_bar(record)]
    if record.error:
        details.append(f"Error: {escape(record.error)}")
    cmd.answer(text="\n".join(d for d in details if d))


def command_cancel(cmd: SlashCommand) -> None:
    if not cmd.rest:
        raise UserError("say which job", hint=usage_hint("cancel", SLACK))
    record = jobs.cancel_job(cmd.ctx.rt, cmd.rest, cmd.user, cmd.channel)
    cmd.answer(text=f"Canceled {headline(record)}")


def command_quota(cmd: SlashCommand) -> None:
    """Reading compute and quota is a remote call on Azure ML (and a torch import locally): after the ack."""
    def answer() -> dict[str, str]:
        options = cmd.ctx.rt.platform.compute_options("any")
        if cmd.rest:
            options = [o for o in options if cmd.rest.lower() in o.name.lower()]
            if not options:
                raise UserError(f'no compute named "{cmd.rest}"', hint="See `/fm quota` for what exists")
        return {"text": "\n".join(f"• `{o.name}` — {o.label}" for o in options)}

    cmd.answer_slowly("Checking compute and quota…", answer)


# How Slack answers each command of the registry that Slack offers; `test_registry` keeps the two equal.
LISTENERS: dict[str, Callable[[SlashCommand], None]] = {
    "help": command_help, "search": command_search, "card": command_card, "try": command_try,
    "evaluate": form_command("evaluate"), "finetune": form_command("finetune"), "deploy": command_deploy,
    "import": command_import, "jobs": command_jobs, "status": command_status, "cancel": command_cancel,
    "endpoints": command_endpoints, "rotate-key": command_rotate_key, "quota": command_quota, "data": command_data,
    "costs": command_costs, "compare": command_compare, "leaderboard": command_leaderboard,
}


def on_fm(ack, command, client, respond, context) -> None:
    """Ack empty, handing the command to an answerer process (bot/slack/answerer.py): the ack then
    costs about what a bare Bolt app's does, whatever the command reads or renders, and no ack
    waits on another command's answer (issue 20). With no answerer alive, answer here after the ack,
    starting with any that were handed to one that died."""
    ack()
    ctx: SlackContext = context["fm"]
    here = functools.partial(ctx.after_ack, answer_here, ctx, command, client, respond)
    if not ctx.answerers.hand_off(command, otherwise=here):
        here()


def answer_here(ctx: SlackContext, command: dict[str, Any], client: Any, respond: Callable[..., Any]) -> None:
    for orphan in ctx.answerers.orphans():
        answer(ctx, orphan, client, Respond(response_url=orphan.get("response_url")))
    answer(ctx, command, client, respond)


def answer(ctx: SlackContext, command: dict[str, Any], client: Any, respond: Callable[..., Any]) -> None:
    text = (command.get("text") or "").strip()
    word, _, rest = text.partition(" ")
    cmd = SlashCommand(ctx=ctx, body=command, rest=rest.strip(), client=client, respond=respond)
    if len(text) > MAX_COMMAND_CHARS:
        cmd.answer(text=f"That command is {len(text):,} characters long; the limit is {MAX_COMMAND_CHARS:,}. "
                        "Attach long text as a file instead.")
        return
    found = lookup(word or "help", SLACK)
    label, trace = observability.begin_command(word.lower())
    try:
        if found is None:
            guess = closest_command(word, SLACK)
            hint = f"Did you mean `{PREFIX[SLACK]}{guess.usage}`?" if guess else "See `/fm help`."
            cmd.answer(text=f"`{word.lower()}` is not an fmbot command. {hint}")
        else:
            LISTENERS[found.name](cmd)
    except Exception as exc:
        observability.count_command(ctx.rt.redis, label, "refused" if user_message(exc) else "error")
        cmd.answer(text=f":warning: {cmd.ctx.explain(exc, trace)}")
    else:
        observability.count_command(ctx.rt.redis, label, "ok")


def register(app: App) -> None:
    app.command("/fm")(on_fm)
