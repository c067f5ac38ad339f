"""Nothing kept for ever, nothing replayed: ledger records past their retention are deleted by the
workers' maintenance, and a signed click runs once (a copy within Slack's 5-minute signature window
is dropped, an older one refused)."""

from __future__ import annotations

import json
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

from bot.slack import middleware
from handlers.actions import Action
from platforms.base import JobState
from tests.bot_server import BotServer
from tests.helpers import wait_until
from tests.slack_standin import SlackSender, button_payload
from workers import keys
from workers.ledger import JobRecord, new_job_id


def old_job(rt, *, days: float, state: JobState) -> JobRecord:
    created = datetime.now(UTC) - timedelta(days=days)
    record = JobRecord(id=new_job_id("evaluate"), kind="evaluate", model="m", task="text-classification",
                       requester="U0USER", spec={}, state=state, created_at=created,
                       finished_at=created + timedelta(hours=1) if state.final else None)
    rt.ledger.create(record)
    rt.redis.rpush(keys.outbox(record.id), "{}")
    return record


def test_workers_delete_ledger_records_past_their_retention(settings, redis, start_worker):
    from bot.bootstrap import build_runtime

    settings = settings.replace(fmbot_ledger_retention_days=30)
    rt = build_runtime(settings, slack=False)
    expired = old_job(rt, days=31, state=JobState.COMPLETED)
    still_running = old_job(rt, days=31, state=JobState.RUNNING)
    recent = old_job(rt, days=29, state=JobState.FAILED)
    worker = start_worker(settings)
    wait_until(lambda: not redis.exists(keys.job(expired.id)), timeout=60, about=lambda: worker.output()[-2000:])
    assert not redis.exists(keys.outbox(expired.id))
    assert [r.id for r in rt.ledger.recent(user="U0USER")] == [recent.id, still_running.id]
    assert redis.zscore(keys.jobs(), expired.id) is None and redis.zscore(keys.user_jobs("U0USER"), expired.id) is None


def click(action_ts: str) -> str:
    return "payload=" + urllib.parse.quote(json.dumps(button_payload("test_click", "v", action_ts=action_ts)))


def test_a_signed_click_runs_once_and_is_never_replayed(slack_settings, slack, monkeypatch):
    clicks: list[str] = []
    known = middleware._button_action  # the policy refuses ids it does not know: teach it the test's button
    monkeypatch.setattr(middleware, "_button_action",
                        lambda action_id: Action.SEARCH if action_id == "test_click" else known(action_id))

    def on_click(ack, body) -> None:
        ack()
        clicks.append(body["actions"][0]["action_ts"])

    bot = BotServer(slack_settings, extend=lambda app: app.action("test_click")(on_click))
    try:
        sender, now = SlackSender(bot.url), int(time.time())
        body = click(f"{now}.000100")
        assert sender.post(body, timestamp=now).status_code == 200
        assert sender.post(body, timestamp=now).status_code == 200, "a captured request sent again"
        assert clicks == [f"{now}.000100"], "the copy was dropped"
        assert sender.post(click(f"{now}.000200"), timestamp=now).status_code == 200
        assert len(clicks) == 2, "a second click of the same button is a new click"
        stale = now - 6 * 60
        assert sender.post(click(f"{stale}.000100"), timestamp=stale).status_code == 401
        assert len(clicks) == 2
    finally:
        bot.close()
