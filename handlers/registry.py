"""The `/fm` subcommands as data: one declaration drives help, typo suggestions and the CLI."""

from __future__ import annotations

import difflib

from pydantic import BaseModel


class Command(BaseModel):
    name: str
    usage: str
    summary: str
    example: str
    spends_money: bool = False


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(name="help", usage="help", summary="Every command with an example", example="/fm help"),
        Command(name="search", usage="search <words> [task:<task>]", summary="Find models in the catalog",
                example="/fm search minilm task:text-classification"),
        Command(name="card", usage="card <model>", summary="A model's card", example="/fm card all-MiniLM-L6-v2"),
        Command(name="finetune", usage="finetune [model]", summary="Fine-tune a model on your data (opens a form)",
                example="/fm finetune all-MiniLM-L6-v2", spends_money=True),
        Command(name="jobs", usage="jobs", summary="Your recent jobs", example="/fm jobs"),
        Command(name="status", usage="status <job>", summary="Where a job stands", example="/fm status ft-1a2b3c4d"),
    )
}


def closest_command(word: str) -> Command | None:
    match = difflib.get_close_matches(word.lower(), list(COMMANDS), n=1, cutoff=0.5)
    return COMMANDS[match[0]] if match else None
