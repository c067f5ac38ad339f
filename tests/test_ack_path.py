"""Nothing slow inside Slack's 3 seconds: endpoint health probes and quota reads answer after the ack,
and the Slack app asks for (and `fmbot doctor` checks) `usergroups:read` when the policy names groups.

A form's last step checks quota (and a deploy the endpoints there already), remote calls on Azure ML:
here the platform's own checks are made to take 4 s each, and the ack must still come back in time,
with the refusal under its field afterwards and one job for a submission that passes.

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
from bot.slack.ids import BlockId, CallbackId
from bot.slack.middleware import ALREADY_SUBMITTED
from platforms.local.endpoints import HEALTH_TIMEOUT_S, EndpointRecord, endpoint_key, endpoints_key
from tests.helpers import DATA, ROOT, SLOW_SECONDS, slowed
from tests.slack_standin import SlackSender, SlackStandIn
from tests.test_e2e_slack import compute_values, nth_view, walk_to_compute_step
from tests.test_slack_deploy import deploy_values
from workers.ledger import Ledger

HANGS = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
         "time.sleep(120)")


SLACK_ACK_SECONDS = 3.0


def _timed_submission(sender: SlackSender, view: dict, values: dict, what: str) -> dict:
    started = time.monotonic()
    response = sender.view_submission(view, values)
    seconds = time.monotonic() - started
    print(f"{what}: acked in {seconds:.2f} s with a {SLOW_SECONDS:g} s check behind it")
    assert seconds < SLACK_ACK_SECONDS, f"the ack of {what} waited {seconds:.1f}s for the checks"
    assert response.status_code == 200
    return response.json()


def _answers(sender: SlackSender, slack: SlackStandIn, command: str, checking: str):
    """Send `command`, check that its first answer says `checking` within 1.5 s, and return a reader
    of everything answered to it so far."""
    response_url = f"{slack.base_url}/respond/{command}"
    started = time.monotonic()
    assert sender.command(command, response_url=response_url).text == ""
    first = slack.wait_for(lambda: slack.answers(response_url), 10)[0]
    seconds = time.monotonic() - started
    assert checking in first["text"] and seconds < 1.5, f"{command}: {first['text']!r} after {seconds:.1f}s"
    return lambda: slack.answers(response_url)


def _note_under(view: dict, block_id: str) -> str:
    """The text of the block right under `block_id`: where a problem found after the ack is shown."""
    ids = [b.get("block_id") for b in view["blocks"]]
    note = view["blocks"][ids.index(block_id) + 1]
    assert note["block_id"] == f"{BlockId.FORM_ERROR}:{block_id}", note
    return note["elements"][0]["text"]


def _initial(view: dict, block_id: str) -> str:
    element = next(b for b in view["blocks"] if b.get("block_id") == block_id)["element"]
    return element.get("initial_value") or element["initial_option"]["value"]


def _checked_then_answered(slack: SlackStandIn, acked: dict, updates_before: int, callback: str) -> dict:
    assert acked["response_action"] == "update" and acked["view"]["callback_id"] == CallbackId.FORM_CHECKING
    return nth_view(slack, "views.update", updates_before, callback, timeout=4 * SLOW_SECONDS + 30)


def test_a_slow_quota_check_and_endpoint_list_come_after_the_deploy_ack(bot, slack: SlackStandIn, tiny_model,
                                                                         monkeypatch):
    sender = SlackSender(bot.url)
    sender.command("deploy tiny-bert")
    form = slack.wait_for(lambda: slack.of("views.open"), 10)[0].params["view"]
    slowed(monkeypatch, bot.runtime.platform, "check_quota", "list_endpoints")
    ledger = Ledger(bot.runtime.redis)

    acked = _timed_submission(sender, form, deploy_values("slow-ep", instances="2"), "deploy over quota")
    again = _checked_then_answered(slack, acked, 0, CallbackId.DEPLOY)
    assert _note_under(again, BlockId.INSTANCES).startswith(
        ":warning: the local platform runs one instance, not 2. Use 1 instance")
    assert (_initial(again, BlockId.ENDPOINT_NAME), _initial(again, BlockId.INSTANCES),
            _initial(again, BlockId.COMPUTE)) == ("slow-ep", "2", "cpu")
    assert ledger.recent() == []

    acked = _timed_submission(sender, again, deploy_values("slow-ep"), "deploy within quota")
    done = _checked_then_answered(slack, acked, 1, CallbackId.FORM_CHECKING)
    assert "Submitted" in json.dumps(done) and "submit" not in done
    retried = sender.view_submission(again, deploy_values("slow-ep")).json()  # Slack's retry, or a double click
    assert retried["errors"] == {BlockId.DEPLOY_KIND: ALREADY_SUBMITTED}
    (record,) = ledger.recent()
    assert record.kind == "deploy" and record.spec["endpoint"] == "slow-ep"


def test_a_slow_quota_check_comes_after_the_ack_of_the_compute_step(bot, slack: SlackStandIn, tiny_model,
                                                                     monkeypatch):
    sender = SlackSender(bot.url)
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    form = walk_to_compute_step(sender, slack, tiny_model, upload)
    slowed(monkeypatch, bot.runtime.platform, "check_quota")
    ledger = Ledger(bot.runtime.redis)
    updates = len(slack.of("views.update"))

    acked = _timed_submission(sender, form, compute_values(instances="3"), "fine-tune over quota")
    again = _checked_then_answered(slack, acked, updates, CallbackId.FORM_COMPUTE)
    assert _note_under(again, BlockId.INSTANCES).startswith(":warning: the local platform runs one instance, not 3")
    assert (_initial(again, BlockId.INSTANCES), _initial(again, BlockId.EPOCHS)) == ("3", "2")
    assert ledger.recent() == []

    acked = _timed_submission(sender, again, compute_values(), "fine-tune within quota")
    done = _checked_then_answered(slack, acked, updates + 1, CallbackId.FORM_CHECKING)
    assert "Submitted" in json.dumps(done)
    assert sender.view_submission(again, compute_values()).json()["errors"] == {BlockId.COMPUTE: ALREADY_SUBMITTED}
    (record,) = ledger.recent()
    assert record.kind == "finetune"


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
        sender = SlackSender(bot.url)
        started, listing = time.monotonic(), _answers(sender, slack, "endpoints", "Checking your endpoints")
        listed = slack.wait_for(lambda: listing()[1:], 2 * HEALTH_TIMEOUT_S + 20)[0]
        assert "slow-one" in json.dumps(listed) and "slow-two" in json.dumps(listed)
        assert time.monotonic() - started >= 2 * HEALTH_TIMEOUT_S, "each probe waited out its timeout"

        quota = _answers(sender, slack, "quota", "Checking compute and quota")
        assert "`cpu`" in slack.wait_for(lambda: quota()[1:], 60)[0]["text"]
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
