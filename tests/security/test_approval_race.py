"""Approve is a compare-and-set, and a job id queued twice runs once: no double GPU spend."""

from __future__ import annotations

import threading
import time


from bot.bootstrap import build_runtime
from bot.slack.ids import ActionId
from handlers.errors import UserError
from handlers.finetune import start_finetune
from handlers.jobs import approve_job
from tests.test_approval import approval_bot, request as finetune  # noqa: F401  (fixture)
from tests.helpers import wait_until
from tests.slack_standin import SlackSender, SlackStandIn, button_payload
from workers.queues import enqueue_job


def texts_with(slack: SlackStandIn, method: str, words: str) -> list[str]:
    return [c.params.get("text", "") for c in slack.of(method) if words in c.params.get("text", "")]


def test_ten_concurrent_approve_clicks_run_the_job_once(approval_bot, slack: SlackStandIn, start_worker):
    bot, settings = approval_bot
    costly = start_finetune(bot.runtime, finetune("cuda"))
    assert costly.approval == "pending"
    start_worker(settings)
    start_worker(settings)
    sender = SlackSender(bot.url)
    clicks = [threading.Thread(target=sender.interaction,
                               args=(button_payload(ActionId.APPROVE_JOB, costly.id, user="U0APPROVER"),))
              for _ in range(10)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    ledger = bot.runtime.ledger
    wait_until(lambda: ledger.get(costly.id).state == "completed", 180)
    assert ledger.get(costly.id).attempts == 1
    assert len(texts_with(slack, "chat.postMessage", "Approved by")) == 1
    refused = wait_until(lambda: texts_with(slack, "chat.postEphemeral", "not waiting for approval"), 10)
    assert len(refused) == 9, "every other click is told the job was already approved"
    assert len(texts_with(slack, "chat.postMessage", "started")) <= 1


def test_ten_bot_replicas_approving_at_once_queue_and_announce_once(approval_bot, slack: SlackStandIn):
    """Bot processes behind a load balancer each have their own ledger view; they race on Redis."""
    bot, settings = approval_bot
    costly = start_finetune(bot.runtime, finetune("cuda"))
    replicas = [build_runtime(settings) for _ in range(10)]
    start = threading.Barrier(len(replicas))
    outcomes: list[str] = []

    def approve(rt) -> None:
        start.wait()
        try:
            approve_job(rt, costly.id, "U0APPROVER", "C0CHAN")
            outcomes.append("approved")
        except UserError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=approve, args=(rt,)) for rt in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("approved") == 1, outcomes
    assert bot.runtime.queue.count == 1
    wait_until(lambda: texts_with(slack, "chat.postMessage", "Approved by"), 10)
    time.sleep(0.5)
    assert len(texts_with(slack, "chat.postMessage", "Approved by")) == 1


def test_a_job_queued_twice_runs_once(approval_bot, slack: SlackStandIn, start_worker):
    bot, settings = approval_bot
    rt = bot.runtime
    record = start_finetune(rt, finetune("cpu"))
    enqueue_job(rt.queue, record.id, timeout=rt.job_timeout, retries=0)  # a replayed enqueue
    start_worker(settings)
    start_worker(settings)
    wait_until(lambda: rt.ledger.get(record.id).state == "completed", 180)
    assert rt.ledger.get(record.id).attempts == 1
    wait_until(lambda: rt.queue.count == 0 and not rt.queue.started_job_registry.get_job_ids(), 60)
    assert rt.ledger.get(record.id).attempts == 1
    assert rt.ledger.get(record.id).state == "completed"
