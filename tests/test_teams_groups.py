"""Entra group rules for Teams users, read from a Microsoft Graph stand-in over real HTTP: a member
of the allowed group may fine-tune, anyone else is refused with the rule named, and a Graph outage
refuses (fail closed) with the reason, cached, so the outage costs one call per user per period."""

from __future__ import annotations

import json

import pytest
import requests

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.settings import Settings  # noqa: E402
from tests.conftest import teams_fields  # noqa: E402
from tests.graph_standin import EXAMPLES, GraphStandIn  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import APP_ID, TeamsSender, TeamsStandIn, TeamsUser  # noqa: E402

ML_TEAM = "0f6d2a61-3c1e-4b8e-9a57-2f1d8c3b7e40"
OTHER_GROUP = "5b9e7c1a-8d2f-4e6b-a3c4-1f0e9d8c7b6a"
ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")
BOB = TeamsUser("bbbbbbbb-0000-4000-8000-000000000002", "Bob Example")


@pytest.fixture
def graph(teams: TeamsStandIn):
    standin = GraphStandIn(teams).start()
    yield standin
    standin.stop()


def group_bot(settings: Settings, teams: TeamsStandIn, graph: GraphStandIn, tmp_path) -> TeamsBotServer:
    rules = tmp_path / "policy.yaml"
    rules.write_text(f'allow:\n  finetune: {{groups: ["{ML_TEAM}", "@ml-team"]}}\n')
    return TeamsBotServer(settings.replace(fmbot_policy=rules, teams_graph_url=graph.url, **teams_fields(teams)))


def finetune_reply(sender: TeamsSender, teams: TeamsStandIn) -> dict:
    before = len(teams.of("reply"))
    assert sender.message("finetune").status_code in (200, 202)
    return teams.wait_for(lambda: [c for c in teams.of("reply")[before:]
                                   if c.cards or "not allowed" in (c.activity.get("text") or "")])[0].activity


def test_the_standin_answers_graphs_published_example(teams: TeamsStandIn, graph: GraphStandIn):
    request = json.loads((EXAMPLES / "graph-checkmembergroups.request.json").read_text())
    published = json.loads((EXAMPLES / "graph-checkmembergroups.response.json").read_text())
    graph.members["4562bcc8-c436-4f95-b7c0-4f8ce89dca5e"] = set(published["value"])
    token = teams._identity_token(f"http://127.0.0.1:{graph.server.port}", APP_ID)
    url = f"{graph.url}/directoryObjects/4562bcc8-c436-4f95-b7c0-4f8ce89dca5e/checkMemberGroups"
    answer = requests.post(url, json=request, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200 and answer.json() == published
    assert requests.post(url, json=request, timeout=10).status_code == 401


def test_a_member_of_the_allowed_group_may_finetune_and_others_are_told_the_rule(
        settings: Settings, teams: TeamsStandIn, graph: GraphStandIn, tmp_path):
    graph.members[ALICE.aad_object_id] = {ML_TEAM}
    graph.members[BOB.aad_object_id] = {OTHER_GROUP}
    bot = group_bot(settings, teams, graph, tmp_path)
    try:
        offer = finetune_reply(TeamsSender(bot.url, teams, ALICE), teams)
        assert offer.get("attachments"), f"Alice (in the group) is offered the dialog, not {offer.get('text')}"
        refused = finetune_reply(TeamsSender(bot.url, teams, BOB, conversation="a:personal-bob"), teams)
        assert "not allowed to fine-tune models" in refused["text"]
        assert f"members of the groups {ML_TEAM}, @ml-team" in refused["text"], refused["text"]
        asked = [c for c in graph.calls if c["path"].endswith("/checkMemberGroups")]
        assert {c["path"] for c in asked} == {f"/v1.0/users/{u.aad_object_id}/checkMemberGroups" for u in (ALICE, BOB)}
        assert all(c["body"] == {"groupIds": [ML_TEAM]} for c in asked), "only the policy's Entra groups are asked about"
        finetune_reply(TeamsSender(bot.url, teams, ALICE), teams)
        assert len(graph.calls) == 2, "a user's groups are cached"
    finally:
        bot.close()


def test_graph_down_refuses_with_the_reason_and_the_failure_is_cached(
        settings: Settings, teams: TeamsStandIn, graph: GraphStandIn, tmp_path):
    graph.members[ALICE.aad_object_id] = {ML_TEAM}
    graph.status = 503
    bot = group_bot(settings, teams, graph, tmp_path)
    try:
        sender = TeamsSender(bot.url, teams, ALICE)
        for _ in range(2):
            refused = finetune_reply(sender, teams)
            assert "not allowed to fine-tune models" in refused["text"]
            assert "your groups could not be checked (Microsoft Graph answered 503)" in refused["text"], refused["text"]
        assert len(graph.calls) == 1, "the failure is cached: one Graph call, not one per message"
    finally:
        bot.close()


def test_a_forged_token_is_refused_before_graph_is_asked(settings: Settings, teams: TeamsStandIn,
                                                        graph: GraphStandIn, tmp_path):
    graph.members[ALICE.aad_object_id] = {ML_TEAM}
    bot = group_bot(settings, teams, graph, tmp_path)
    try:
        sender = TeamsSender(bot.url, teams, ALICE)
        assert sender.message("finetune", token=teams.channel_token(forged=True)).status_code == 401
        assert graph.calls == [] and teams.calls == []
    finally:
        bot.close()
