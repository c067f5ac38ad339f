"""The command registry is the one declaration of a command: every surface is built from it."""

from __future__ import annotations

import argparse

import pytest

from bot.cli import RUNNERS, _parser
from bot.slack.commands import LISTENERS, help_text
from handlers.errors import UserError, user_message
from handlers.registry import COMMANDS, Surface, closest_command, lookup, metric_label, on


def cli_subcommands() -> set[str]:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_every_cli_subcommand_is_a_registry_word_on_the_cli():
    words = {w for c in on(Surface.CLI) for w in c.words}
    assert cli_subcommands() == words
    assert set(RUNNERS) == {c.name for c in on(Surface.CLI)}


def test_every_slack_command_and_alias_is_in_the_registry():
    assert set(LISTENERS) == {c.name for c in on(Surface.SLACK)}
    for word in ("models", "search"):
        assert lookup(word, Surface.SLACK) is COMMANDS["search"]
    assert lookup("delete-endpoint", Surface.SLACK) is None and lookup("worker", Surface.SLACK) is None


def test_words_are_unique_and_handlers_resolve():
    words = [w for c in COMMANDS.values() for w in c.words]
    assert len(words) == len(set(words))
    for command in COMMANDS.values():
        if command.handler is not None:
            assert callable(command.handler_function()), command.name


def test_slack_help_and_suggestions_name_only_slack_commands():
    text = help_text()
    for command in COMMANDS.values():
        assert (f"/fm {command.usage}" in text) == (Surface.SLACK in command.surfaces), command.name
    assert closest_command("delete-endpoin", Surface.SLACK) is not COMMANDS["delete-endpoint"]
    assert closest_command("delete-endpoin", Surface.CLI) is COMMANDS["delete-endpoint"]


@pytest.mark.parametrize(("word", "label"), [("models", "search"), ("", "help"), ("nonsense", "unknown"),
                                             ("delete-endpoint", "unknown"), ("status", "status")])
def test_metric_labels_come_from_the_registry(word, label):
    assert metric_label(word, Surface.SLACK) == label


def test_a_remedy_is_named_only_where_the_surface_offers_it():
    error = UserError('an endpoint named "x" already exists', hint="Pick another name, or delete that endpoint first",
                      remedy=("delete-endpoint", "x"))
    assert user_message(error, Surface.CLI).endswith(": `fmbot delete-endpoint x`")
    slack = user_message(error, Surface.SLACK)
    assert "delete-endpoint" not in slack and slack.endswith("delete that endpoint first")
