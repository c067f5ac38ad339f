"""Commands sent to the bot as messages: `@fmbot finetune` in a channel, `finetune` in a chat.

The names, usage, help and typo suggestions are the registry's (`handlers/registry.py`); each
command here calls its handler and answers with a card or a line of text. Forms cannot open from a
message (Teams opens a dialog only on a click), so `finetune` and `evaluate` answer with a card
whose button opens the dialog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import TurnContext

from bot.teams import compare, conversations, data
from bot.teams.context import TeamsContext, card_message, reply_target, require, requester
from bot.teams.views import catalog as catalog_views
from bot.teams.views import data as data_views
from bot.teams.views.cards import Element, card, heading, open_dialog, text
from bot.teams.views.jobs import deployed_card, predictions_actions, status_card, title
from handlers import catalog, costs, deploy, imports, jobs, tryout
from workers.costs import money
from handlers.errors import UserError
from handlers.registry import COMMANDS, Surface, closest_command, lookup, on, usage_hint
from platforms.base import DeploySpec, ImportSpec
from platforms.tasks import parse_task

MAX_COMMAND_CHARS = 2000
TEAMS = Surface.TEAMS
_MENTION = re.compile(r"<at>[^<]*</at>")
Answer = str | Element


def command_text(activity: Activity) -> str:
    """The message without the bot's @mention (and a leading `/fm` people bring from Slack)."""
    words = _MENTION.sub(" ", activity.text or "").replace("&nbsp;", " ").strip()
    return words.removeprefix("/fm ").strip() if words != "/fm" else ""


def help_card() -> Element:
    body = [heading("fmbot — foundation models from Teams"),
            text("Send a command to me (in a channel, @mention me first):")]
    body += [text(f"**{c.usage}** — {c.summary}, e.g. `{c.example}`", spacing="Small") for c in on(TEAMS)]
    return card(body)


def _usage(name: str) -> str:
    return f"{usage_hint(name, TEAMS)}, e.g. `{COMMANDS[name].example}`"


def _needs(rest: str, name: str, what: str) -> str:
    if not rest:
        raise UserError(f"say which {what}", hint=_usage(name))
    return rest


def search(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    words, task = [], None
    for word in rest.split():
        if word.startswith("task:"):
            task = parse_task(word.removeprefix("task:"))
        else:
            words.append(word)
    return catalog_views.search_results(catalog.search_models(ctx.rt, " ".join(words), task), " ".join(words), task)


def model_card(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    return catalog_views.model_card(catalog.model_card(ctx.rt, _needs(rest, "card", "model")))


def form(kind: str) -> Callable[[TeamsContext, Activity, str], Answer]:
    def open_form(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
        model = ctx.rt.platform.get_model(rest).ref if rest else None
        label = {"finetune": "Fine-tune", "evaluate": "Evaluate"}[kind]
        return card([heading(f"{label} {model or 'a model'}"),
                     text("The form asks for the data, maps its columns and picks compute.")],
                     [open_dialog(f"Open the {label.lower()} form", {"kind": kind, "model": model or ""})])
    return open_form


def try_model(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    model, _, words = _needs(rest, "try", "model").partition(" ")
    result = tryout.try_model(ctx.rt, model, words, requester=requester(activity))
    shown = json.dumps(result.outputs[0] if len(result.outputs) == 1 else result.outputs, ensure_ascii=False)
    source = "the task's sample input" if result.sample_input else "your text"
    return f"**{result.model}** ({result.task}) on {source}, in {result.seconds:.2f} s:\n\n{shown[:1500]}"


def job_list(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    records = jobs.list_jobs(ctx.rt, user=requester(activity))
    return "\n\n".join(title(r) for r in records) or "You have no jobs yet."


def status(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    """A line; a finished evaluation's card, whose button sends its predictions as a file."""
    record = jobs.job_status(ctx.rt, _needs(rest, "status", "job"), requester(activity), activity.conversation.id)
    if predictions_actions(record):
        return status_card(record)
    return "\n\n".join(line for line in (title(record), record.error and f"Error: {record.error}") if line)


def cancel(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    record = jobs.cancel_job(ctx.rt, _needs(rest, "cancel", "job"), requester(activity), activity.conversation.id)
    return f"Canceled: {title(record)}"


def quota(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    options = ctx.rt.platform.compute_options("any")
    if rest:
        options = [o for o in options if rest.lower() in o.name.lower()]
        if not options:
            raise UserError(f'no compute named "{rest}"', hint="See `quota` for what exists")
    return "\n\n".join(f"**{o.name}** — {o.label}" for o in options)


def cost_report(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    words = rest.lower().split()
    if words[:1] == ["digest"]:
        if words[1:] not in (["on"], ["off"]):
            raise UserError("say `costs digest on` or `costs digest off`", hint=_usage("costs"))
        return costs.set_digest(ctx.rt, reply_target(activity), words[1] == "on")
    report = costs.costs_report(ctx.rt, requester(activity), activity.conversation.id)
    lines = [f"**Costs in {report.month}**: yours {money(report.yours)} (estimated, then actual once each job ends)"]
    lines += [f"{b.scope} budget: {money(b.used)} of {money(b.budget)}" for b in report.budgets]
    lines += [f"{who}: {money(usd)}" for who, usd in list(report.users.items())[:15]]
    lines.append(f"Prices: {report.price_source}, read {report.prices_read}")
    return "\n\n".join(lines)


def endpoints(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    infos = deploy.list_endpoints(ctx.rt)
    return "\n\n".join(f"**{e.name}** — {e.model} · {e.state}" for e in infos) or "There are no endpoints."


def rotate_key(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    """The answer is posted in the conversation, so it carries no key: the new one waits in its
    pickup slot, and the card's refresh, which Teams runs for the requester alone, hands it over."""
    user = requester(activity)
    info = deploy.rotate_endpoint_key(ctx.rt, _needs(rest, "rotate-key", "endpoint").split()[0], user, pick_up=False)
    who = conversations.user(ctx.rt.redis, user)
    return deployed_card(info.name, info.model, info.url or "", who["mri"] if who else None)


def start_deploy(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    model, _, endpoint = _needs(rest, "deploy", "model").partition(" ")
    if not endpoint.strip():
        ref = ctx.rt.platform.get_model(model).ref
        return card([heading(f"Deploy {ref}"), text("The form asks for the endpoint's name and its compute.")],
                    [open_dialog("Open the deploy form", {"kind": "deploy", "model": ref})])
    record = deploy.start_deploy(ctx.rt, deploy.DeployRequest(
        spec=DeploySpec(model=model, endpoint=endpoint.strip()), requester=requester(activity),
        reply_to=reply_target(activity)))
    return f"Deploying {record.model} to {endpoint.strip()}: follow {record.id} on its card."


def start_import(ctx: TeamsContext, activity: Activity, rest: str) -> Answer:
    model_id, _, task = rest.partition(" ")
    if not task.strip():
        return card([heading(f"Import {model_id or 'a model'} from Hugging Face"),
                     text(f"The form asks for the task and license, or send `{_usage('import')}`.")],
                    [open_dialog("Open the import form", {"kind": "import", "model_id": model_id})])
    record = imports.start_import(ctx.rt, imports.ImportRequest(
        spec=ImportSpec(model_id=model_id, task=task), requester=requester(activity), reply_to=reply_target(activity)))
    return f"Importing {model_id} as job {record.id}: follow it on its card."


# A room for every command the registry offers in Teams (`on(Surface.TEAMS)`), by name; `answer` checks
# the registry's permission first.
ROOMS: dict[str, Callable[[TeamsContext, Activity, str], Answer]] = {
    "help": lambda ctx, activity, rest: help_card(), "search": search, "card": model_card, "try": try_model, "finetune": form("finetune"), "evaluate": form("evaluate"),
    "deploy": start_deploy, "import": start_import, "jobs": job_list, "status": status, "cancel": cancel, "endpoints": endpoints,
    "rotate-key": rotate_key, "quota": quota, "costs": cost_report, "compare": compare.command_compare,
    "leaderboard": compare.command_leaderboard, "data": data.command_data,
}


def answer(ctx: TeamsContext, activity: Activity) -> Answer:
    """The answer to one command message (refusals included, as text)."""
    words = command_text(activity)
    if len(words) > MAX_COMMAND_CHARS:
        return f"That command is {len(words):,} characters long; the limit is {MAX_COMMAND_CHARS:,}."
    name, _, rest = words.partition(" ")
    name, rest = name.lower(), rest.strip()
    if name == "":
        return help_card()
    command = lookup(name, TEAMS)
    if command is None:
        guess = closest_command(name, TEAMS)
        return f"`{name}` is not an fmbot command. " + (f"Did you mean `{guess.usage}`?" if guess else "Send `help`.")
    try:
        if command.permission is not None:
            require(activity, command.permission)
        return ROOMS[command.name](ctx, activity, rest)
    except Exception as exc:
        return f"⚠️ {ctx.explain(exc)}"


async def on_message(ctx: TeamsContext, context: TurnContext) -> None:
    activity = context.activity
    if not command_text(activity) and conversations.shared_files(activity):
        await context.send_activity(card_message(data_views.file_received(conversations.shared_files(activity))))
        return
    reply = await ctx.blocking(answer, ctx, activity)
    if isinstance(reply, str):
        await context.send_activity(reply)
    else:
        await context.send_activity(card_message(reply))

