"""The README's configuration table and command list stay true to the code."""

from __future__ import annotations

from bot.settings_reference import markdown_table
from handlers.registry import Surface, on
from tests.helpers import ROOT


def test_configuration_table_matches_the_settings_model():
    assert markdown_table() in (ROOT / "README.md").read_text()


def test_every_slash_command_is_documented():
    readme = (ROOT / "README.md").read_text()
    for command in on(Surface.SLACK):
        assert f"/fm {command.usage.split(' ')[0]}" in readme, command.name


def test_every_teams_command_is_documented():
    readme = (ROOT / "README.md").read_text()
    teams = readme[readme.index("## Using fmbot in Teams"):readme.index("### Connect Teams")]
    for command in on(Surface.TEAMS):
        assert f"`{command.name}" in teams, command.name


def test_the_layout_table_names_every_module():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("<!-- layout:"):readme.index("### Where things go")]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    for folder in ("bot", "bot/slack", "bot/slack/views", "bot/teams", "bot/teams/views", "handlers", "workers",
                   "platforms", "platforms/azureml", "platforms/datasets", "platforms/local"):
        row = rows[f"{folder}/"]
        for module in sorted((ROOT / folder).glob("*.py")):
            if module.stem != "__init__":
                assert f"`{module.stem}`" in row, f"README layout: {folder}/{module.name} is not in the {folder}/ row"
