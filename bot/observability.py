"""What operators see: Prometheus metrics, readiness, and JSON logs with secrets taken out.

Metrics of the bot process itself (commands, ack latency) are ordinary prometheus-client objects.
Everything workers do happens in other processes, often on other hosts, so `/metrics` adds at
scrape time what Redis knows: queue depth, live workers, ledger jobs by state, and the counters
workers add up in Redis (`workers/telemetry.py`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler

from bot.settings import Settings
from handlers.registry import Surface, metric_label
from workers import keys, telemetry
from workers.ledger import Ledger
from workers.queues import QUEUE_NAME

log = logging.getLogger(__name__)

ACK_SECONDS = Histogram(
    "fmbot_ack_seconds", "Time from a Slack request arriving to its HTTP answer (Slack allows 3 s).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
LEDGER_SCAN_LIMIT = 1000
READY_CACHE_OK_SECONDS = 60.0
READY_CACHE_FAILED_SECONDS = 10.0


def begin_command(word: str) -> tuple[str, str]:
    """Start the trace of one `/fm` command; returns (metric label, trace id)."""
    return metric_label(word, Surface.SLACK), telemetry.start_trace()


def count_command(redis: Redis, label: str, outcome: str) -> None:
    """`outcome` is ok, refused (the user's mistake, answered with why) or error (ours). Counted in
    Redis, since the answerer process (bot/slack/answerer.py) answers, not the one serving /metrics."""
    telemetry.record_command(redis, label, outcome)


LEDGER_CACHE_SECONDS = 30.0
_ledger_cache: tuple[float, Any, dict[tuple[str, str], int]] | None = None
_ledger_lock = threading.Lock()


def ledger_states(redis: Redis, counters: dict[tuple[str, ...], float]) -> dict[tuple[str, str], int]:
    """Jobs of the latest LEDGER_SCAN_LIMIT records by (kind, state), parsed again only when a job
    was added or changed state (the ledger's size or the job-state counters moved), and at least
    every LEDGER_CACHE_SECONDS: a scrape, or anyone who reaches /metrics, must not make the bot parse
    a thousand records each time."""
    global _ledger_cache
    version = (redis.zcard(keys.jobs()), sorted((k, v) for k, v in counters.items() if k[0] == "jobs"))
    with _ledger_lock:
        if _ledger_cache is not None and time.monotonic() < _ledger_cache[0] and _ledger_cache[1] == version:
            return _ledger_cache[2]
        states: dict[tuple[str, str], int] = {}
        for record in Ledger(redis).recent(limit=LEDGER_SCAN_LIMIT):
            key = (record.kind, str(record.state))
            states[key] = states.get(key, 0) + 1
        _ledger_cache = (time.monotonic() + LEDGER_CACHE_SECONDS, version, states)
        return states


class RedisCollector:
    """Gauges and worker-side counters read from Redis when Prometheus scrapes."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("fmbot_redis_up", "1 when the scrape could read Redis.")
        try:
            names = {QUEUE_NAME} | {q.name for q in Queue.all(connection=self.redis) if q.name.startswith(QUEUE_NAME)}
            depths = {name: Queue(name, connection=self.redis).count for name in sorted(names)}
            workers = Worker.count(connection=self.redis)
            counters = telemetry.read_counters(self.redis)
            states = ledger_states(self.redis, counters)
        except RedisError as exc:
            log.warning("metrics scrape could not read Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queue_depth = GaugeMetricFamily("fmbot_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])
        for name, depth in depths.items():
            queue_depth.add_metric([name], depth)
        yield queue_depth
        alive = GaugeMetricFamily("fmbot_workers", "RQ workers alive (heartbeat within their TTL).")
        alive.add_metric([], workers)
        yield alive
        yield self._ledger_states(states)
        yield from self._worker_counters(counters)

    @staticmethod
    def _ledger_states(states: dict[tuple[str, str], int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "fmbot_ledger_jobs", f"Jobs in the ledger by kind and state (the latest {LEDGER_SCAN_LIMIT}).",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(states.items()):
            family.add_metric([kind, state], count)
        return family

    @staticmethod
    def _worker_counters(counters: dict[tuple[str, ...], float]) -> Iterator[Any]:
        jobs = CounterMetricFamily("fmbot_jobs", "Job state changes, by job kind and event.", labels=["kind", "state"])
        commands = CounterMetricFamily("fmbot_commands", "Slash commands handled, by command and outcome.",
                                       labels=["command", "outcome"])
        retries = CounterMetricFamily("fmbot_notification_retries", "Slack Web API calls retried, by reason.",
                                      labels=["reason"])
        duration = HistogramMetricFamily("fmbot_job_duration_seconds", "Run time of finished jobs.", labels=["kind"])
        in_bucket: dict[str, dict[str, float]] = {}
        for (name, *labels), value in counters.items():
            if name == "jobs":
                jobs.add_metric(labels, value)
            elif name == "commands":
                commands.add_metric(labels, value)
            elif name == "notify_retries":
                retries.add_metric(labels, value)
            elif name == "duration_in_bucket":
                in_bucket.setdefault(labels[0], {})[labels[1]] = value
        for kind in sorted(labels[0] for name, *labels in counters if name == "duration_count"):
            bounds, counts = [f"{b:g}" for b in telemetry.JOB_DURATION_BUCKETS], in_bucket.get(kind, {})
            buckets = list(zip(bounds, accumulate(counts.get(bound, 0.0) for bound in bounds), strict=True))
            buckets.append(("+Inf", counters[("duration_count", kind)]))
            duration.add_metric([kind], buckets, sum_value=counters.get(("duration_sum", kind), 0.0))
        yield jobs
        yield commands
        yield retries
        yield duration


def metrics_page(redis: Redis) -> bytes:
    """The process's own metrics followed by what Redis knows, in one exposition."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(RedisCollector(redis))
    return generate_latest(REGISTRY) + generate_latest(scraped)


class Readiness:
    """Is this bot able to serve? Redis answers and Slack accepts the token.

    The Slack answer is cached (a minute when good, seconds when bad) so probes every few seconds
    from several replicas do not spend Slack's rate limit on auth.test."""

    def __init__(self, redis: Redis, client: WebClient):
        self.redis, self.client = redis, client
        self._slack: tuple[float, str | None] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, client: WebClient) -> Readiness:
        """Probe connections of their own: short timeouts and no retries, so a probe answers in seconds."""
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        probe = WebClient(token=client.token, base_url=client.base_url, timeout=5, retry_handlers=[])
        return cls(redis, probe)

    def problems(self) -> dict[str, str]:
        failed: dict[str, str] = {}
        try:
            self.redis.ping()
        except RedisError as exc:
            failed["redis"] = f"Redis did not answer: {exc}"
        slack = self._slack_problem()
        if slack:
            failed["slack"] = slack
        return failed

    def _slack_problem(self) -> str | None:
        with self._lock:
            now = time.monotonic()
            if self._slack is not None and now < self._slack[0]:
                return self._slack[1]
            try:
                self.client.auth_test()
                problem = None
            except Exception as exc:
                problem = f"Slack auth.test failed: {_slack_error(exc)}"
            ttl = READY_CACHE_FAILED_SECONDS if problem else READY_CACHE_OK_SECONDS
            self._slack = (now + ttl, problem)
            return problem


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return str(response.get("error") or exc)
    return str(exc)


class _CountedRetry(RetryHandler):
    """Wraps one of slack_sdk's retry handlers and counts each retry it decides on."""

    def __init__(self, inner: RetryHandler, redis: Redis):
        super().__init__(max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator)
        self.inner, self.redis = inner, redis

    def can_retry(self, **kwargs: Any) -> bool:
        return self.inner.can_retry(**kwargs)

    def prepare_for_next_attempt(self, **kwargs: Any) -> None:
        reason = type(self.inner).__name__.removesuffix("RetryHandler").lower() or "other"
        try:
            telemetry.record_notification_retry(self.redis, reason)
        except RedisError:
            log.warning("could not count a Slack retry (%s)", reason)
        self.inner.prepare_for_next_attempt(**kwargs)


def count_retries(client: WebClient, redis: Redis) -> WebClient:
    client.retry_handlers = [_CountedRetry(handler, redis) for handler in client.retry_handlers]
    return client


# ---------------------------------------------------------------------- logs

REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    (re.compile(r"xox[abposre]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"xapp-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<1>" + REDACTED),
    (re.compile(r"(rediss?://[^:/@\s]*:)[^@\s]+@"), r"\g<1>" + REDACTED + "@"),
)


LIBRARY_LOGGERS = ("transformers", "torch", "py.warnings", "accelerate", "peft", "huggingface_hub")


class LibraryNoise(logging.Filter):
    """Libraries' warnings (transformers' load reports, torch's pin_memory notice) are about their
    internals, not what the user asked for: they are kept at debug level, errors excepted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or not record.name.startswith(LIBRARY_LOGGERS):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class SecretRedactor(logging.Filter):
    """Removes Slack tokens, bearer keys, Redis passwords and the configured secret values from
    every record before any handler formats it (including exception text)."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, trace_id, job_id (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": telemetry.trace_id.get(),
            "job_id": telemetry.job_id.get(),
        }
        if record.exc_info:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def secret_values(settings: Settings) -> list[str]:
    return [v for v in (settings.secret(settings.slack_bot_token), settings.secret(settings.slack_signing_secret),
                        settings.secret(settings.slack_app_token)) if v]


def configure_logging(settings: Settings, stream: Any = None) -> logging.Handler:
    """The one logging set-up of bot and workers: JSON lines on stderr, secrets redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(LibraryNoise())
    handler.addFilter(SecretRedactor(secret_values(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.fmbot_log_level.upper())
    # azure-core logs every HTTP request and header at INFO; keep its warnings only.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    return handler

