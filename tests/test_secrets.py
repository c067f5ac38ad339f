"""Secrets stay secret: the bot token, the signing secret and endpoint keys never reach logs,
job records shown to users, or channel messages; an endpoint key goes only to its owner."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings
from handlers.deploy import DeployRequest, start_deploy
from platforms.base import DeploySpec
from tests.helpers import final_record, DATA, wait_until
from tests.slack_standin import BOT_TOKEN, SIGNING_SECRET, SlackSender, SlackStandIn
from tests.bot_server import BotServer
from tests.tiny_models import add_tiny_bert
from workers.ledger import ReplyTarget


@pytest.fixture
def debug_bot(slack_settings: Settings, caplog: pytest.LogCaptureFixture) -> Iterator[BotServer]:
    caplog.set_level(logging.DEBUG)
    server = BotServer(slack_settings.replace(fmbot_log_level="DEBUG"))
    yield server
    server.close()





def test_secrets_stay_out_of_logs_records_and_channels(debug_bot: BotServer, slack: SlackStandIn,
                                                       slack_settings: Settings, start_worker,
                                                       caplog: pytest.LogCaptureFixture):
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    model = add_tiny_bert(Path(slack_settings.fmbot_models_dir), texts).ref
    worker = start_worker(slack_settings.replace(fmbot_log_level="DEBUG"))
    rt = debug_bot.runtime
    sender = SlackSender(debug_bot.url)
    assert sender.command("search tiny").status_code == 200
    record = start_deploy(rt, DeployRequest(spec=DeploySpec(model=model, endpoint="secret-test"), requester="U0USER",
                                            reply_to=ReplyTarget(channel="C0CHAN")))
    try:
        final = final_record(rt.ledger, record.id, timeout=180)
        assert final.state == "completed", worker.output()[-3000:]
        slack.wait_for(lambda: any(":rocket:" in (c.params.get("text") or "") for c in slack.of("chat.postMessage")))

        assert sender.button("endpoint_show_key", "secret-test", user="U0OTHER").status_code == 200
        assert sender.button("endpoint_show_key", "secret-test", user="U0USER").status_code == 200
        notes = slack.wait_for(lambda: len(slack.of("chat.postEphemeral")) == 2 and slack.of("chat.postEphemeral"))
        given = {c.params["user"]: c.params["text"] for c in notes}
        key = given["U0USER"].split("`")[1]
        assert len(key) >= 32 and key not in given["U0OTHER"] and "someone else" in given["U0OTHER"]

        secrets = {"bot token": BOT_TOKEN, "signing secret": SIGNING_SECRET, "endpoint key": key}
        shown = json.dumps([r.public() for r in rt.ledger.recent()])
        public_posts = json.dumps([c.params for c in slack.calls if c.method != "chat.postEphemeral"])
        logs = "\n".join(r.getMessage() for r in caplog.records) + worker.output()
        assert "DEBUG" in worker.output(), "the worker really logged at debug level"
        for name, value in secrets.items():
            assert value not in shown, f"{name} in a job record shown to users"
            assert value not in public_posts, f"{name} in a channel message"
            assert value not in logs, f"{name} in the logs"
    finally:
        rt.platform.delete_endpoint("secret-test")
