"""notify_latency: from a job's final state in the worker to its message arriving at Slack.

fmbot's path is the worker's own, timed from the moment the platform returned (`run_job` calls
`workers.jobs._finish`): the final state and its outbox notice are stored in a private Redis, the
runtime's SlackNotifier (the one `fmbot worker` builds, with its renderer, retry-counting client and
App Home refresh) posts to the Slack Web API stand-in over real HTTP, and the job is counted for
operators afterwards. Each job is created and started through the runtime's ledger first, as
`run_job` reads and starts it, so the final write is made against the record the worker last saw.
The baseline is the floor of any notifier: one `chat.postMessage` from the same process with a
client built the same way (`bot.slack.client.web_client`). Jobs alternate between the two.

The stand-in stamps each call as it arrives, so two figures come out for fmbot: the job's status
message updated (the first call, `chat.update`), and the result reply in its thread (the second).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.common import Result, log, main, median, percentile, slack_settings

NAME = "notify_latency"
METRICS = {"accuracy": 0.91, "f1": 0.9, "precision": 0.905, "recall": 0.897}
SAMPLES = [{"input": "I loved this movie, the acting was wonderful.", "reference": "positive", "prediction": "positive"}]


def stamped_standin() -> Any:
    """The Slack stand-in, noting when each Web API call arrives (perf_counter, this process)."""
    from tests.slack_standin import SlackStandIn

    class Stamped(SlackStandIn):
        arrivals: list[tuple[float, str]]

        def _api(self, request: Any) -> None:
            self.arrivals.append((time.perf_counter(), request.path))
            super()._api(request)

    standin = Stamped()
    standin.arrivals = []
    return standin.start()


def run(quick: bool) -> list[Result]:
    from bot.redis_server import private_redis
    from bot.bootstrap import build_runtime
    from bot.slack.client import web_client
    from platforms.base import JobState
    from workers.jobs import _finish
    from workers.ledger import JobRecord, ReplyTarget, new_job_id
    from workers.notifier import JobEvent

    jobs = 20 if quick else 200
    first: list[float] = []
    reply: list[float] = []
    direct: list[float] = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fmbot-bench-notify-")))
        redis = stack.enter_context(private_redis())
        standin = stamped_standin()
        stack.callback(standin.stop)
        settings = slack_settings(redis.url, standin.api_url, root)
        rt = build_runtime(settings)
        client = web_client(settings)

        def finish_one() -> None:
            record = rt.ledger.create(JobRecord(
                id=new_job_id("evaluate"), kind="evaluate", model="all-MiniLM-L6-v2:1", task="text-classification",
                spec={}, requester="U0USER", reply_to=ReplyTarget(channel="C0CHAN", thread_ts="1700000000.000001"),
            ))
            rt.ledger.transition(record.id, JobState.RUNNING, attempts=1)
            seen = len(standin.arrivals)
            started = time.perf_counter()
            _finish(rt, record.id, JobState.COMPLETED, JobEvent.COMPLETED, metrics=METRICS, samples=SAMPLES)
            calls = standin.arrivals[seen:]
            if [path for _, path in calls[:2]] != ["/api/chat.update", "/api/chat.postMessage"]:
                raise RuntimeError(f"unexpected Slack calls for a finished job: {calls}")
            first.append(calls[0][0] - started)
            reply.append(calls[1][0] - started)

        def post_one() -> None:
            seen = len(standin.arrivals)
            started = time.perf_counter()
            client.chat_postMessage(channel="C0CHAN", thread_ts="1700000000.000001", text="ev-0000 completed")
            direct.append(standin.arrivals[seen][0] - started)

        for _ in range(5):
            finish_one()
            post_one()
        first.clear(), reply.clear(), direct.clear()
        for index in range(jobs):
            for step in (finish_one, post_one) if index % 2 == 0 else (post_one, finish_one):
                step()
        log(f"{NAME}: {jobs} jobs, direct p50 {median(direct) * 1000:.2f} ms, "
            f"status p50 {median(first) * 1000:.2f} ms, reply p50 {median(reply) * 1000:.2f} ms")

    results = []
    for label, values in (("status message updated", first), ("result reply in thread", reply)):
        for q in (50, 99):
            results.append(Result(
                benchmark=NAME, metric=f"final state → {label}, p{q} over {jobs} jobs", unit="ms",
                fmbot=percentile(values, q) * 1000, baseline=percentile(direct, q) * 1000,
                baseline_name="direct chat.postMessage", target=1.5,
            ))
    return results


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))
