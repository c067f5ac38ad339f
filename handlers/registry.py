"""The `/fm` subcommands as data: one declaration drives help, typo suggestions and the CLI.

`permission` names the policy action a command needs; `spends_money` marks commands that launch
paid compute, which the policy and the approval flow treat with more care. `repeatable` marks
commands answered entirely in the ack from what is stored: a delivery Slack retries is simply
answered again (the first answer was lost, or Slack would not have retried), so it needs no claim.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel


class Command(BaseModel):
    name: str
    usage: str
    summary: str
    example: str
    permission: str = "search"
    spends_money: bool = False
    repeatable: bool = False


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(name="help", usage="help", summary="Every command with an example", example="/fm help", repeatable=True),
        Command(name="search", usage="search <words> [task:<task>]", summary="Find models in the catalog",
                example="/fm search minilm task:text-classification", repeatable=True),
        Command(name="card", usage="card <model>", summary="A model's card with Try, Evaluate, Fine-tune, Deploy",
                example="/fm card all-MiniLM-L6-v2", repeatable=True),
        Command(name="try", usage="try <model> [text]", summary="Sample inference (a task sample without text)",
                example="/fm try all-MiniLM-L6-v2-ft I loved it", permission="try"),
        Command(name="evaluate", usage="evaluate [model]", summary="Score a model on your test data (opens a form)",
                example="/fm evaluate all-MiniLM-L6-v2", permission="evaluate"),
        Command(name="finetune", usage="finetune [model]", summary="Fine-tune a model on your data (opens a form)",
                example="/fm finetune all-MiniLM-L6-v2", permission="finetune", spends_money=True),
        Command(name="deploy", usage="deploy [model]", summary="Deploy a model to an endpoint (opens a form)",
                example="/fm deploy all-MiniLM-L6-v2-ft", permission="deploy", spends_money=True),
        Command(name="import", usage="import <hf-model-id> [task]", summary="Import a Hugging Face model",
                example="/fm import bert-base-uncased/bert fill-mask", permission="import", spends_money=True),
        Command(name="jobs", usage="jobs", summary="Your recent jobs", example="/fm jobs", repeatable=True),
        Command(name="status", usage="status <job>", summary="Where a job stands", example="/fm status ft-1a2b3c4d", repeatable=True),
        Command(name="cancel", usage="cancel <job>", summary="Cancel a queued or running job",
                example="/fm cancel ft-1a2b3c4d", permission="cancel"),
        Command(name="endpoints", usage="endpoints", summary="Deployed endpoints and their state",
                example="/fm endpoints", repeatable=True),
        Command(name="quota", usage="quota [sku]", summary="Compute you can use now", example="/fm quota cpu", repeatable=True),
    )
}


def closest_command(word: str) -> Command | None:
    match = difflib.get_close_matches(word.lower(), list(COMMANDS), n=1, cutoff=0.5)
    return COMMANDS[match[0]] if match else None
