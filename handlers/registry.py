"""Every fmbot command as data: the one declaration each surface builds its commands from.

Slack's `/fm` dispatch, the CLI's subcommands, help, typo suggestions, the policy check of a slash
command and the metric labels all read `COMMANDS`; a surface adds only how it renders answers.
`surfaces` says where a command is offered, so help and hints name only commands the reader can run.
`permission` is the policy action a command needs before it runs (None: checked inside the handler,
as cancelling someone else's job is, or a command of the operator's own process). `repeatable` marks commands answered entirely in the
ack from what is stored: a delivery Slack retries is simply answered again (the first answer was
lost, or Slack would not have retried), so it needs no claim. `arguments` are the CLI's flags and
positionals; chat surfaces read the same words from the message text. `handler` names the
`handlers.*` function the command calls, as a dotted path so that building a parser imports nothing
heavy; operational commands of one process (`worker`, `serve`, ...) have none.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from functools import cache
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel

from handlers.actions import Action


class Surface(StrEnum):
    SLACK = "slack"
    CLI = "cli"
    TEAMS = "teams"


PREFIX = {Surface.SLACK: "/fm ", Surface.CLI: "fmbot ", Surface.TEAMS: "@fmbot "}
CHAT = frozenset({Surface.SLACK, Surface.TEAMS})
EVERYWHERE = frozenset(Surface)
CLI_ONLY = frozenset({Surface.CLI})


class Argument(BaseModel):
    """One CLI argument: a positional (`model`) or an option (`--task`)."""

    flag: str
    help: str | None = None
    kind: Literal["text", "int", "float", "switch"] = "text"
    required: bool = False
    many: bool = False
    default: Any = None
    dest: str | None = None
    metavar: str | None = None


class Command(BaseModel):
    name: str
    usage: str
    summary: str
    example: str
    aliases: tuple[str, ...] = ()
    permission: Action | None = Action.SEARCH
    repeatable: bool = False
    surfaces: frozenset[Surface] = EVERYWHERE
    arguments: tuple[Argument, ...] = ()
    handler: str | None = None

    def handler_function(self) -> Callable[..., Any] | None:
        if self.handler is None:
            return None
        module, _, name = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), name)

    @property
    def words(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


JSON = Argument(flag="--json", kind="switch", help="print JSON")
WAIT = Argument(flag="--wait", kind="switch", help="follow the job and print its final record")
MODEL = Argument(flag="model", help="NAME or NAME:VERSION")
SKIP = Argument(flag="--skip-bad-rows", kind="switch",
                help="leave out rows that cannot be used (refused above FMBOT_MAX_BAD_ROWS_PERCENT)")
DRY_RUN = Argument(flag="--dry-run", kind="switch", help="check the data and print its preview; queue nothing")
LANGS = (Argument(flag="--source-lang", help="translation: source language code, e.g. en"),
         Argument(flag="--target-lang", help="translation: target language code, e.g. ro"))

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(name="help", usage="help", summary="Every command with an example", example="help", repeatable=True,
                surfaces=CHAT),
        Command(name="search", aliases=("models",), usage="search <words> [task:<task>]",
                summary="Find models in the catalog", example="search minilm task:text-classification",
                repeatable=True, handler="handlers.catalog.search_models",
                arguments=(JSON, Argument(flag="words", many=True, help="words the name or description must contain"),
                           Argument(flag="--task", help="only models for this task"))),
        Command(name="card", usage="card <model>", summary="A model's card with Try, Evaluate, Fine-tune, Deploy",
                example="card all-MiniLM-L6-v2", repeatable=True,
                handler="handlers.catalog.model_card", arguments=(JSON, MODEL)),
        Command(name="try", usage="try <model> [text]", summary="Sample inference (a task sample without text)",
                example="try all-MiniLM-L6-v2-ft I loved it", permission=Action.TRY, handler="handlers.tryout.try_model",
                arguments=(JSON, MODEL,
                           Argument(flag="text", many=True,
                                    help='the input; "A ||| B" for pairs (question ||| context), or a JSON object'),
                           Argument(flag="--task", help="the task to run (default: the model's first task)"))),
        Command(name="evaluate", usage="evaluate [model]", summary="Score a model on your test data (opens a form)",
                example="evaluate all-MiniLM-L6-v2", permission=Action.EVALUATE,
                handler="handlers.evaluate.start_evaluation",
                arguments=(JSON, MODEL, Argument(flag="--task", required=True),
                           Argument(flag="--test", required=True,
                                    help="test data: a file, data:NAME[:VERSION] or azureml:NAME:VERSION"),
                           Argument(flag="--map", required=True, help="KEY=COLUMN[,KEY=COLUMN...]"), *LANGS,
                           Argument(flag="--max-length", kind="int", help="tokens per input (default 256); generated "
                                    "text is capped at the same or 128"),
                           SKIP, DRY_RUN, Argument(flag="--wait", kind="switch"))),
        Command(name="compare", usage="compare <model> <model> [<model> ...]",
                summary="Rank 2 to 8 models on your test data, in one thread (opens the evaluate form)",
                example="compare all-MiniLM-L6-v2 tiny-bert tiny-bert-ft", permission=Action.EVALUATE,
                handler="handlers.compare.start_comparison",
                arguments=(JSON, Argument(flag="models", many=True, metavar="MODEL", help="2 to 8 models"),
                           Argument(flag="--task", required=True),
                           Argument(flag="--test", required=True, help="test data file"),
                           Argument(flag="--map", required=True, help="KEY=COLUMN[,KEY=COLUMN...]"), *LANGS,
                           Argument(flag="--max-length", kind="int", help="tokens per input (default 256)"),
                           Argument(flag="--wait", kind="switch",
                                    help="follow the comparison and print its ranked result"))),
        Command(name="leaderboard", usage="leaderboard <task> [dataset]",
                summary="Every evaluation on one dataset (content and mapping), ranked", repeatable=True,
                example="leaderboard text-classification reviews-test.jsonl",
                handler="handlers.compare.show_leaderboard",
                arguments=(JSON, Argument(flag="task"),
                           Argument(flag="dataset", many=True, help="the test file's name or the board's id "
                                    "(default: the dataset evaluated last)"))),
        Command(name="finetune", usage="finetune [model]", summary="Fine-tune a model on your data (opens a form)",
                example="finetune all-MiniLM-L6-v2", permission=Action.FINETUNE,
                handler="handlers.finetune.start_finetune",
                arguments=(JSON, MODEL, Argument(flag="--task", required=True, help="e.g. text-classification"),
                           Argument(flag="--train", required=True, help="training data: a JSONL, JSON, CSV or TSV file, "
                                    "data:NAME[:VERSION] (a registered dataset) or azureml:NAME:VERSION"),
                           Argument(flag="--validation", help="validation file (default: split off the training data)"),
                           Argument(flag="--validation-split", help="fraction or percent of training data for "
                                    "validation (default 0.1)"),
                           Argument(flag="--test", help="test file (default: split off the training data)"),
                           Argument(flag="--test-split", help="fraction or percent of training data for testing "
                                    "(default 0.1)"),
                           Argument(flag="--map", required=True,
                                    help="KEY=COLUMN[,KEY=COLUMN...], e.g. sentence1=review,label=stars"),
                           Argument(flag="--epochs", kind="int"), Argument(flag="--learning-rate", kind="float"),
                           Argument(flag="--batch-size", kind="int"), Argument(flag="--max-length", kind="int"),
                           Argument(flag="--seed", kind="int"),
                           Argument(flag="--lora", kind="switch", help="train LoRA adapters (merged on save); "
                                    "text-generation, summarization and translation"),
                           *LANGS,
                           Argument(flag="--output-name", help="catalog name of the fine-tuned model (default NAME-ft)"),
                           SKIP, DRY_RUN, WAIT)),
        Command(name="deploy", usage="deploy [model]", summary="Deploy a model to an endpoint (opens a form)",
                example="deploy all-MiniLM-L6-v2-ft", permission=Action.DEPLOY, handler="handlers.deploy.start_deploy",
                arguments=(JSON, MODEL,
                           Argument(flag="--endpoint", required=True,
                                    help="3-32 characters: a letter, then letters, digits, hyphens"),
                           Argument(flag="--instances", kind="int", default=1, help="serving processes (default 1)"),
                           Argument(flag="--task", help="the task to serve (default: the model's first task)"),
                           Argument(flag="--compute", help="VM size of a managed deployment (default: the first "
                                    "listed size the model allows)"),
                           Argument(flag="--serverless", kind="switch",
                                    help="a serverless pay-per-token API (only models Azure offers so)"),
                           Argument(flag="--no-content-filter", kind="switch",
                                    help="serverless: turn Azure's content filtering off"),
                           Argument(flag="--ttl", help="time to live: 8h, 90m, 2d or never (default from the "
                                    "policy; never only where it allows)"),
                           Argument(flag="--wait", kind="switch", help="wait until the endpoint answers"))),
        Command(name="import", usage="import <hf-model-id> [task]", summary="Import a Hugging Face model",
                example="import bert-base-uncased/bert fill-mask", permission=Action.IMPORT,
                handler="handlers.imports.start_import",
                arguments=(JSON, Argument(flag="model_id", metavar="MODEL_ID",
                                          help="OWNER/NAME, e.g. google-bert/bert-base-uncased"),
                           Argument(flag="--task", required=True, help="fill-mask, text-classification, translation, ..."),
                           Argument(flag="--from", dest="source", metavar="PATH",
                                    help="a local Hugging Face-format folder (else the hub)"),
                           Argument(flag="--license", help="license of the model (default: from its README.md front "
                                    "matter)"),
                           Argument(flag="--name", help="catalog name (default: MODEL_ID with / replaced by -)"),
                           WAIT)),
        Command(name="data", usage="data [show <name>[:<version>] | delete <name>:<version>]",
                summary="Registered datasets: list, show, register a file, delete a version",
                example="data show reviews", permission=Action.EVALUATE,
                handler="handlers.data.list_datasets",
                arguments=(JSON, Argument(flag="action", help="list, show, register or delete", metavar="ACTION"),
                           Argument(flag="names", many=True, metavar="NAME [FILE]",
                                    help="register NAME FILE · show NAME[:VERSION] · delete NAME:VERSION"),
                           Argument(flag="--description", help="register: what the data is"),
                           Argument(flag="--task", help="show: preview the data for this task (with --map)"),
                           Argument(flag="--map", help="show: KEY=COLUMN[,KEY=COLUMN...] for the preview"),
                           Argument(flag="--max-length", kind="int", default=128,
                                    help="show: tokens per input the preview warns about (default 128)"))),
        Command(name="jobs", usage="jobs", summary="Your recent jobs", example="jobs", repeatable=True,
                handler="handlers.jobs.list_jobs",
                arguments=(JSON, Argument(flag="--limit", kind="int", default=20))),
        Command(name="status", usage="status <job>", summary="Where a job stands", example="status ft-1a2b3c4d",
                repeatable=True, handler="handlers.jobs.job_status", arguments=(JSON, Argument(flag="job"))),
        Command(name="cancel", usage="cancel <job>", summary="Cancel a queued or running job",
                example="cancel ft-1a2b3c4d", permission=None, handler="handlers.jobs.cancel_job", arguments=(JSON, Argument(flag="job"))),
        Command(name="endpoints", usage="endpoints", summary="Deployed endpoints and their state",
                example="endpoints", repeatable=True, handler="handlers.deploy.list_endpoints",
                arguments=(JSON, Argument(flag="--show-keys", kind="switch",
                                          help="show the URL and key of the endpoints you deployed"))),
        Command(name="rotate-key", usage="rotate-key <endpoint>",
                summary="A new key for an endpoint you deployed (shown once, to you only); the old one stops working",
                example="rotate-key my-endpoint", handler="handlers.deploy.rotate_endpoint_key",
                arguments=(JSON, Argument(flag="name", help="the endpoint"))),
        Command(name="delete-endpoint", usage="delete-endpoint <name>", summary="Stop an endpoint and remove it",
                example="delete-endpoint my-endpoint", surfaces=CLI_ONLY, permission=None, handler="handlers.deploy.delete_endpoint",
                arguments=(JSON, Argument(flag="name"))),
        Command(name="costs", usage="costs [digest on|off]",
                summary="This month's spend per user and channel, and your budgets; a channel's cost digest",
                example="costs", repeatable=True, handler="handlers.costs.costs_report",
                arguments=(JSON, Argument(flag="--refresh-prices", kind="switch",
                                          help="read the VM prices again from Azure's Retail Prices API into "
                                               "FMBOT_PRICES (needs the internet)"))),
        Command(name="quota", usage="quota [sku]", summary="Compute you can use now", example="quota cpu",
                repeatable=True, surfaces=CHAT),
        Command(name="worker", usage="worker [--burst] [--processes N]", summary="Run an RQ worker for fmbot's jobs",
                example="worker --processes 2", surfaces=CLI_ONLY, permission=None,
                arguments=(Argument(flag="--burst", kind="switch", help="exit when the queue is empty"),
                           Argument(flag="--processes", kind="int", metavar="N",
                                    help="run N workers under a supervisor that restarts any that exit"))),
        Command(name="serve", usage="serve [--socket | --teams [--dev]]",
                summary="Serve Slack over HTTP (/slack/events) or Socket Mode, or Teams (/api/messages)",
                example="serve --port 3000", surfaces=CLI_ONLY, permission=None,
                arguments=(Argument(flag="--host", default="0.0.0.0"),
                           Argument(flag="--port", kind="int", help="default 3000 (Slack) or 3978 (Teams)"),
                           Argument(flag="--socket", kind="switch", help="use Socket Mode (needs SLACK_APP_TOKEN)"),
                           Argument(flag="--teams", kind="switch",
                                    help="serve Microsoft Teams (needs fmbot[teams] and TEAMS_APP_ID)"),
                           Argument(flag="--dev", kind="switch", help="with --teams: no credentials, no token checks "
                                    "(Agents Playground only)"))),
        Command(name="demo", usage="demo", summary="Fine-tune MiniLM-L6 end to end on this machine", example="demo",
                surfaces=CLI_ONLY, permission=None),
        Command(name="doctor", usage="doctor [--azure]", example="doctor --azure", surfaces=CLI_ONLY, permission=None,
                summary="Check Slack, Redis, workers and the platform; say how to fix what is wrong",
                arguments=(JSON, Argument(flag="--azure", kind="switch",
                                          help="check only Azure ML: credential, workspace, registry, components, "
                                               "quota, VM sizes"))),
        Command(name="config", usage="config [--env-example]", example="config --env-example", surfaces=CLI_ONLY, permission=None,
                summary="Print the effective configuration (secrets masked)",
                arguments=(JSON, Argument(flag="--env-example", kind="switch",
                                          help="print a documented .env with every setting"))),
    )
}


def on(surface: Surface) -> list[Command]:
    """The commands `surface` offers, in the order help lists them."""
    return [c for c in COMMANDS.values() if surface in c.surfaces]


@cache
def _by_word(surface: Surface) -> dict[str, Command]:
    """Every name and alias `surface` offers, to its command (the first in help's order): looked up
    on every Slack delivery before its ack."""
    words: dict[str, Command] = {}
    for command in on(surface):
        for word in command.words:
            words.setdefault(word, command)
    return words


def lookup(word: str, surface: Surface) -> Command | None:
    """The command `word` (a name or an alias) means on `surface`."""
    return _by_word(surface).get(word.lower())


def closest_command(word: str, surface: Surface) -> Command | None:
    """The command a mistyped `word` most likely meant, among those `surface` offers."""
    commands = _by_word(surface)
    match = difflib.get_close_matches(word.lower(), list(commands), n=1, cutoff=0.5)
    return commands[match[0]] if match else None


def metric_label(word: str, surface: Surface) -> str:
    """A command's metric label: its name, `help` for an empty command, `unknown` for anything else,
    so typos cannot create time series."""
    if word == "":
        return "help"
    command = lookup(word, surface)
    return command.name if command else "unknown"


def usage_hint(name: str, surface: Surface) -> str:
    return f"Usage: `{PREFIX[surface]}{COMMANDS[name].usage}`"


def mention(name: str, args: str = "", *, surface: Surface) -> str | None:
    """`fmbot delete-endpoint x` on a surface that has the command, None where it does not."""
    command = COMMANDS[name]
    if surface not in command.surfaces:
        return None
    return f"`{PREFIX[surface]}{command.name}{' ' + args if args else ''}`"
