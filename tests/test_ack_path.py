"""Nothing slow inside Slack's 3 seconds: endpoint health probes and quota reads answer after the ack,
and the Slack app asks for (and `fmbot doctor` checks) `usergroups:read` when the policy names groups.

The endpoints here are real processes (named as serving processes, so fmbot counts them alive) that
listen and never answer, so each health probe waits out its timeout: listing two takes longer than
Slack allows, and the ack must not wait for it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import yaml

from bot.doctor import GROUPS_SCOPE, REQUIRED_SCOPES, check_slack
from bot.settings import Settings
from platforms.local.endpoints import HEALTH_TIMEOUT_S, EndpointRecord, endpoint_key, endpoints_key
from tests.helpers import ROOT
from tests.slack_standin import SlackSender, SlackStandIn

HANGS = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
         "time.sleep(120)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_endpoints_and_quota_are_answered_after_the_ack(bot, slack: SlackStandIn, tmp_path):
    redis = bot.runtime.redis
    hung = []
    try:
        for name in ("slow-one", "slow-two"):
            port = _free_port()
            hung.append(subprocess.Popen([sys.executable, "-c", HANGS, str(port), "platforms.local.serving"]))
            record = EndpointRecord(name=name, model="tiny-bert:1", task="text-classification", instances=1,
                                    key="k", owner="U0USER", phase="running", port=port, pid=hung[-1].pid,
                                    log_file=str(tmp_path / f"{name}.log"), state_file=str(tmp_path / f"{name}.json"),
                                    created_at=datetime.now(UTC))
            redis.set(endpoint_key(name), record.model_dump_json())
            redis.sadd(endpoints_key(), name)
        time.sleep(0.5)  # both listening
        sender = SlackSender(bot.url, response_url=f"{slack.base_url}/respond/1")
        started = time.monotonic()
        acked = sender.command("endpoints")
        ack_seconds = time.monotonic() - started
        assert "Checking your endpoints" in acked.json()["text"]
        assert ack_seconds < 1.5, f"the ack waited {ack_seconds:.1f}s for health probes"
        listed = slack.wait_for(lambda: slack.of("response_url"), 2 * HEALTH_TIMEOUT_S + 20)[0].params
        assert "slow-one" in json.dumps(listed) and "slow-two" in json.dumps(listed)
        assert time.monotonic() - started >= 2 * HEALTH_TIMEOUT_S, "each probe waited out its timeout"

        started = time.monotonic()
        assert "Checking compute and quota" in sender.command("quota").json()["text"]
        assert time.monotonic() - started < 1.5
        assert "`cpu`" in slack.wait_for(lambda: slack.of("response_url")[1:], 60)[0].params["text"]
    finally:
        for process in hung:
            process.kill()
            process.wait()


def test_usergroups_scope_is_asked_for_and_checked_when_the_policy_names_groups(slack_settings: Settings, tmp_path):
    for manifest in ("slack-app-manifest.yaml", "slack-app-manifest.socket-mode.yaml"):
        scopes = yaml.safe_load((ROOT / "deploy" / manifest).read_text())["oauth_config"]["scopes"]["bot"]
        assert GROUPS_SCOPE in scopes

    class Scoped(SlackStandIn):
        scopes = ",".join(REQUIRED_SCOPES)

        def _json(self, request, body: dict) -> None:
            self._reply(request, 200, json.dumps(body).encode(), extra={"x-oauth-scopes": self.scopes})

    scoped = Scoped().start()
    try:
        grouped = tmp_path / "policy.yaml"
        grouped.write_text("allow:\n  finetune: {groups: ['@ml-team']}\n")
        settings = slack_settings.replace(slack_api_url=scoped.api_url)
        plain = {c.name: c for c in check_slack(settings)}
        assert plain["slack scopes"].status == "ok"
        named = {c.name: c for c in check_slack(settings.replace(fmbot_policy=grouped))}
    finally:
        scoped.stop()
    assert named["slack scopes"].status == "problem"
    assert named["slack scopes"].detail.startswith(f"missing {GROUPS_SCOPE} (")
    assert "names user groups" in named["slack scopes"].detail and "reinstall" in named["slack scopes"].fix
