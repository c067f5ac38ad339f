"""Registering a file shared in a Teams chat as a dataset, over real HTTP: the file's message,
the Register as dataset button (`adaptiveCard/action`), `data register NAME`, the download through
the stand-in's file host, the registered dataset offered in the next dialog (real Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.settings import Settings  # noqa: E402
from bot.teams.ids import Input, Verb  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import TeamsSender, TeamsStandIn  # noqa: E402
from tests.test_compare import SST2, add_models  # noqa: E402
from tests.test_e2e_teams import open_dialog  # noqa: E402
from tests.test_teams import ALICE, BOB  # noqa: E402
from tests.test_teams_compare import answer_card  # noqa: E402


def last_text(sender: TeamsSender, teams: TeamsStandIn, text: str) -> str:
    before = len(teams.of("reply"))
    sender.message(text)
    return teams.wait_for(lambda: [c for c in teams.of("reply")[before:] if c.activity.get("text")])[0].activity["text"]


def test_a_file_shared_in_teams_is_registered_from_its_button_and_by_command(teams_settings: Settings,
                                                                             teams: TeamsStandIn):
    models = add_models(Path(teams_settings.fmbot_models_dir))
    content = SST2.read_bytes()
    rows = len(content.splitlines())
    bot = TeamsBotServer(teams_settings)
    try:
        alice = TeamsSender(bot.url, teams, ALICE)
        assert "no file has been shared in this chat" in last_text(alice, teams, "data register reviews")

        before = len(teams.of("reply"))
        alice.message("", attachments=[teams.share_file("sst2 small (dev).jsonl", content)])
        answer = teams.wait_for(lambda: [c for c in teams.of("reply")[before:] if c.cards])[0].cards[0]
        (button,) = answer["actions"]
        assert button["title"] == "Register as dataset" and button["verb"] == Verb.DATA_REGISTER

        registered = alice.execute(Verb.DATA_REGISTER, button["data"]).json()
        assert registered["type"] == "application/vnd.microsoft.activity.message", registered
        assert f"as dataset `sst2-small-dev:1` ({rows:,} rows)" in registered["value"], registered
        again = alice.execute(Verb.DATA_REGISTER, button["data"]).json()
        assert "`sst2-small-dev:1`" in again["value"], "the same bytes are the same version"

        bob = TeamsSender(bot.url, teams, BOB, conversation="a:personal-bob")
        refused = bob.execute(Verb.DATA_REGISTER, button["data"]).json()
        assert "that file is no longer offered in this chat" in refused["value"], "a file is read only where it was shared"

        assert "is more than one word" in last_text(alice, teams, "data register two words")
        assert "as dataset `reviews:1`" in last_text(alice, teams, "data register reviews")
        details = answer_card(alice, teams, "data show reviews")
        facts = {f["title"]: f["value"] for f in details["body"][1]["facts"]}
        assert facts["Rows"] == f"{rows:,}" and facts["Registered by"] == ALICE.aad_object_id

        data_card = open_dialog(alice, teams, f"compare {models['good']} {models['other']}")
        offered = [c["value"] for e in data_card["body"] if e.get("id") == Input.DATASET for c in e["choices"]]
        assert {"sst2-small-dev:1", "reviews:1"} <= set(offered), offered
        assert teams.problems == []
    finally:
        bot.close()
