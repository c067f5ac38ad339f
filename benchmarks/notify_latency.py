"""notify_latency: 50 jobs ending at once, each final message in its thread within 1 s (p99).

The layout is a team's: each channel runs a couple of jobs, each job has its own thread (its status
message), and 50 jobs over 25 channels, 2 each, end in the same instant (a sweep finishing, a
morning's queue draining on many workers). The Slack stand-in enforces Slack's chat.postMessage
limit (`tests.slack_standin.PostRateLimit`: one message per second per channel, bursts of 2,
429 with Retry-After over it), so the figure includes what rate limiting costs. Physics bounds the
layout: k jobs ending together in one channel need about k − burst seconds for their last message
whatever the notifier does, so 1 s holds only for up to burst + 1 jobs a channel.

fmbot's path is the worker's own from the moment the platform returned (`workers.jobs._finish`,
each job on its own thread as on its own worker): the final state and its outbox notice stored in a
private Redis, the runtime's SlackNotifier posting the status update (`chat.update`) and the result
reply in the thread (`chat.postMessage`) over real HTTP. The baseline is the floor of any notifier:
the same 50 replies as bare `chat.postMessage` calls from 50 threads, with a client built the same
way (`bot.slack.client.web_client`), through the same limit. Each figure is per round (all 50 jobs),
rounds alternating; the limiter starts full each round. Order per thread is checked, not timed: a
job's status update lands before its reply, and every job's reply lands exactly once.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.common import Result, alternate, compared, log, main, percentile, rounds, slack_settings

NAME = "notify_latency"
JOBS, CHANNELS = 50, 25
METRICS = {"accuracy": 0.91, "f1": 0.9, "precision": 0.905, "recall": 0.897}
SAMPLES = [{"input": "I loved this movie, the acting was wonderful.", "reference": "positive", "prediction": "positive"}]


def layout(jobs: int, channels: int) -> list[tuple[str, str]]:
    """(channel, thread_ts) of each job: jobs dealt over the channels, each in its own thread."""
    return [(f"C{index % channels:05d}", f"1700000000.{index:06d}") for index in range(jobs)]


def at_once(steps: list[Callable[[], None]]) -> list[float]:
    """Run each step on its own thread, released together; returns when each began (perf_counter)."""
    start = threading.Barrier(len(steps))
    began = [0.0] * len(steps)

    def one(index: int) -> None:
        start.wait()
        began[index] = time.perf_counter()
        steps[index]()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return began


def reply_latencies(standin: Any, seen: int, targets: list[tuple[str, str]], began: list[float],
                    status_first: bool) -> list[float]:
    """Seconds from each job's end to its reply landing; raises when a reply is missing, doubled or
    (for fmbot) ahead of its status update."""
    calls = standin.calls[seen:]
    latencies = []
    for (channel, thread), start in zip(targets, began, strict=True):
        mine = [c for c in calls if c.params.get("channel") == channel
                and thread in (c.params.get("thread_ts"), c.params.get("ts"))]
        landed = [c.method for c in mine if "!" not in c.method]
        expected = ["chat.update", "chat.postMessage"] if status_first else ["chat.postMessage"]
        if landed != expected:
            raise RuntimeError(f"job in {channel}/{thread}: calls {landed}, expected {expected}")
        latencies.append(next(c.at for c in mine if c.method == "chat.postMessage") - start)
    return latencies


def run(quick: bool) -> list[Result]:
    from bot.redis_server import private_redis
    from bot.bootstrap import build_runtime
    from bot.slack.client import web_client
    from platforms.base import JobState
    from tests.slack_standin import PostRateLimit, SlackStandIn
    from workers.jobs import _finish
    from workers.ledger import JobRecord, ReplyTarget, new_job_id
    from workers.notifier import JobEvent

    jobs, channels = (10, 5) if quick else (JOBS, CHANNELS)
    targets = layout(jobs, channels)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fmbot-bench-notify-")))
        redis = stack.enter_context(private_redis())
        standin = SlackStandIn().start()
        stack.callback(standin.stop)
        settings = slack_settings(redis.url, standin.api_url, root)
        rt = build_runtime(settings)
        client = web_client(settings)

        def fmbot_round() -> tuple[list[float], int]:
            ids = []
            for channel, thread in targets:
                record = rt.ledger.create(JobRecord(
                    id=new_job_id("evaluate"), kind="evaluate", model="all-MiniLM-L6-v2:1",
                    task="text-classification", spec={}, requester="U0USER",
                    reply_to=ReplyTarget(channel=channel, thread_ts=thread)))
                rt.ledger.transition(record.id, JobState.RUNNING, attempts=1)
                ids.append(record.id)
            standin.post_limit, seen = PostRateLimit(), len(standin.calls)
            began = at_once([lambda job=job: _finish(rt, job, JobState.COMPLETED, JobEvent.COMPLETED,
                                                     metrics=METRICS, samples=SAMPLES) for job in ids])
            limited = sum(1 for c in standin.calls[seen:] if c.method.endswith("!429"))
            return reply_latencies(standin, seen, targets, began, status_first=True), limited

        def baseline_round() -> tuple[list[float], int]:
            standin.post_limit, seen = PostRateLimit(), len(standin.calls)
            began = at_once([lambda c=channel, t=thread: client.chat_postMessage(
                channel=c, thread_ts=t, text="ev-0000 completed") for channel, thread in targets])
            limited = sum(1 for c in standin.calls[seen:] if c.method.endswith("!429"))
            return reply_latencies(standin, seen, targets, began, status_first=False), limited

        fmbot_round(), baseline_round()  # warm-up: connections, imports, Redis scripts
        runs = alternate(rounds(quick), {"fmbot": fmbot_round, "baseline": baseline_round})
        for side, per_round in runs.items():
            log(f"{NAME} {side}: p99 per round " + ", ".join(f"{percentile(r, 99) * 1000:.0f} ms" for r, _ in per_round)
                + f"; 429s per round {[n for _, n in per_round]}")

    ms = 1000.0
    fm = {q: [percentile(r, q) * ms for r, _ in runs["fmbot"]] for q in (50, 99)}
    base = {q: [percentile(r, q) * ms for r, _ in runs["baseline"]] for q in (50, 99)}
    where = f"{jobs} jobs ending at once, {channels} channels, a thread each, 1 msg/s/channel"
    p99 = compared(NAME, f"job end → final reply in its thread, p99 ({where})", fm[99], base[99], unit="ms",
                   baseline_name=f"bare chat.postMessage ×{jobs} at once", limit=1000.0,
                   note=f"429s per round: fmbot {max(n for _, n in runs['fmbot'])} at most, "
                        f"baseline {max(n for _, n in runs['baseline'])}")
    return [
        p99,
        compared(NAME, f"job end → final reply in its thread, p50 ({where})", fm[50], base[50], unit="ms",
                 baseline_name=f"bare chat.postMessage ×{jobs} at once"),
    ]


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))
