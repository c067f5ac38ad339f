"""The README's configuration table and command list stay true to the code."""

from __future__ import annotations

from bot.settings_reference import markdown_table
from handlers.registry import Surface, on
from tests.conftest import ROOT


def test_configuration_table_matches_the_settings_model():
    assert markdown_table() in (ROOT / "README.md").read_text()


def test_every_slash_command_is_documented():
    readme = (ROOT / "README.md").read_text()
    for command in on(Surface.SLACK):
        assert f"/fm {command.usage.split(' ')[0]}" in readme, command.name
