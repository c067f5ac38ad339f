"""What work will cost before it runs, and what it cost after: estimates, throughput history, monthly spend.

A duration estimate is work (rows × epochs × sequence length in units of 128 tokens) over the samples a
second that model family reached before on that compute: the last THROUGHPUT_HISTORY finished jobs of the
family there set the range, and DEFAULT_SAMPLES_PER_SECOND (scaled by the family's size words) stands in
until there is history. Money is that time × instances × the price table's hourly price of the compute's
real VM size (a cluster is priced by the size it was created with); the local platform costs nothing.

Spend is kept per month in Redis, one entry per job or endpoint: charged with the estimate (its high end,
what the request may cost) when the work is recorded, replaced by the actual cost when it ends, so a budget
check always sums what is committed. Every key is built in `workers/keys.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from redis import Redis

from platforms.base import Platform
from platforms.prices import PriceTable, load_prices
from workers import keys

THROUGHPUT_HISTORY = 20
TOKENS_PER_UNIT = 128  # samples/s are recorded per 128-token sample, so lengths compare
# Samples a second per instance (per GPU on GPU compute) of a base-sized encoder at 128 tokens before fmbot
# has history. CPU: MiniLM-L6 fine-tunes at ~90/s on 2 cores (benchmarks/results.md); GPU: an A100-class
# card trains a base encoder at roughly ten times that.
DEFAULT_SAMPLES_PER_SECOND = {"cpu": 40.0, "gpu": 400.0}
FAMILY_SCALE = (("tiny", 4.0), ("mini", 2.2), ("small", 2.0), ("distil", 1.8), ("base", 1.0), ("large", 0.3),
                ("gpt2", 0.8), ("phi", 0.05), ("7b", 0.03), ("8b", 0.03), ("13b", 0.015), ("70b", 0.002))
EVALUATION_SPEEDUP = 3.0  # a forward pass without backward and optimizer steps
DEFAULT_SPREAD = (0.6, 1.6)  # the range around a default-table estimate: it is a guess until history exists
HISTORY_MARGIN = 0.1
# Set-up around the training loop: loading and saving on this machine; provisioning and image pulls on Azure.
OVERHEAD_SECONDS = {"local": (5.0, 30.0), "remote": (600.0, 1200.0)}


@dataclass
class CostConfig:
    """The cost settings a runtime carries (FMBOT_PRICES, FMBOT_APPROVAL_USD, approval expiry, endpoint
    timers), gathered so the Runtime holds one field for them."""

    prices: PriceTable = field(default_factory=load_prices)
    approval_usd: float = 0.0
    approval_expiry_hours: float = 24.0
    approval_reminder_hours: float = 2.0
    ttl_warning_hours: float = 1.0
    ttl_extension_hours: float = 8.0
    idle_hours: float = 4.0
    digest_interval_hours: float = 24.0


class Estimate(BaseModel):
    """What a request will take and cost, as shown before Submit and kept on its job record."""

    seconds_low: float
    seconds_high: float
    gpu_hours_low: float = 0.0
    gpu_hours_high: float = 0.0
    usd_low: float | None = 0.0
    usd_high: float | None = 0.0
    hourly_usd: float | None = 0.0
    compute: str | None = None
    size: str | None = None
    instances: int = 1
    free: bool = False
    basis: str = "default table"
    work: float = 0.0  # 128-token samples the job processes; what throughput is recorded against
    throughput_key: str | None = None
    price_source: str | None = None
    tokens: dict[str, float] | None = None  # serverless: USD per 1,000 input and output tokens

    @property
    def seconds_mid(self) -> float:
        return (self.seconds_low + self.seconds_high) / 2

    def summary(self) -> str:
        """`≈ 1.5–2 GPU-hours ≈ $4–6 on Standard_NC24ads_A100_v4 ×1`, or the local platform's time."""
        where = f"{self.size or self.compute or 'default compute'} ×{self.instances}"
        if self.tokens is not None:
            return (f"pay per token: ${self.tokens['input']:g} per 1K input and ${self.tokens['output']:g} per 1K "
                    f"output tokens ({self.size or 'serverless'})")
        if self.free:
            return f"≈ {span(self.seconds_low, self.seconds_high)} on {where}; the local platform costs nothing"
        if self.gpu_hours_high > 0:
            head = f"≈ {number_span(self.gpu_hours_low, self.gpu_hours_high)} GPU-hours"
        else:
            head = f"≈ {span(self.seconds_low, self.seconds_high)}"
        if self.usd_high is None:
            return f"{head} on {where}; no price for it in the price table"
        return f"{head} ≈ {money_span(self.usd_low or 0.0, self.usd_high)} on {where}"


def span(low: float, high: float) -> str:
    """`2–4 min`, `1.5–2 h`: seconds as a range in the unit that reads best."""
    for unit, seconds in (("h", 3600), ("min", 60)):
        if high >= 2 * seconds:
            return f"{number_span(low / seconds, high / seconds)} {unit}"
    return f"{number_span(low, high)} s"


def number_span(low: float, high: float) -> str:
    def short(value: float) -> str:
        return f"{value:.2g}" if value < 10 else f"{value:.0f}"

    return short(low) if short(low) == short(high) else f"{short(low)}–{short(high)}"


def money(value: float) -> str:
    return f"${value:,.2f}" if value < 100 else f"${value:,.0f}"


def money_span(low: float, high: float) -> str:
    if money(low) == money(high):
        return money(low)
    return f"${low:,.2f}–{high:,.2f}" if high < 100 else f"${low:,.0f}–{high:,.0f}"


def model_family(model: str) -> str:
    """`all-MiniLM-L6-v2-ft-ft:3` → `all-minilm-l6-v2`: a fine-tune trains at its base model's speed."""
    name = model.split(":")[0].lower()
    while name.endswith("-ft"):
        name = name[: -len("-ft")]
    return name


def family_scale(family: str) -> float:
    return next((scale for word, scale in FAMILY_SCALE if re.search(rf"(^|[-_.]){word}", family)), 1.0)


def work_units(kind: str, rows: int, epochs: int, max_length: int) -> float:
    units = rows * max(epochs, 1) * max(max_length, 1) / TOKENS_PER_UNIT
    return units / EVALUATION_SPEEDUP if kind == "evaluate" else units


def recorded_rates(redis: Redis, key: str) -> list[float]:
    return [float(v) for v in redis.lrange(keys.throughput(key), 0, THROUGHPUT_HISTORY - 1)]


def record_throughput(redis: Redis, key: str, samples_per_second: float) -> None:
    """Keep the newest THROUGHPUT_HISTORY rates of a family on a compute (one list, newest first)."""
    with redis.pipeline() as pipe:
        pipe.lpush(keys.throughput(key), f"{samples_per_second:.6g}")
        pipe.ltrim(keys.throughput(key), 0, THROUGHPUT_HISTORY - 1)
        pipe.execute()


def estimate_job(redis: Redis, platform: Platform, prices: PriceTable, *, kind: str, model: str, compute: str | None,
                 instances: int, rows: int, epochs: int = 1, max_length: int = TOKENS_PER_UNIT) -> Estimate:
    """A fine-tune's or evaluation's duration range and its price on the compute's real VM size."""
    local = platform.name == "local"
    size = None if local else platform.vm_size(compute)
    gpus = platform.compute_gpus(compute)
    family = model_family(model)
    key = f"{kind}:{family}:{(size or compute or 'default').lower()}"
    work = work_units(kind, rows, epochs, max_length)
    rates = recorded_rates(redis, key)
    overhead = OVERHEAD_SECONDS["local" if local else "remote"]
    if rates:
        # Recorded rates are whole-job rates (set-up included), so no overhead is added to them.
        low = work / (max(rates) * (1 + HISTORY_MARGIN))
        high = work / (min(rates) * (1 - HISTORY_MARGIN))
        basis = f"{len(rates)} earlier {'job' if len(rates) == 1 else 'jobs'} of {family} on {size or compute or 'this compute'}"
    else:
        per_instance = DEFAULT_SAMPLES_PER_SECOND["gpu" if gpus else "cpu"] * max(gpus or 1, 1)
        rate = per_instance * family_scale(family) * max(instances, 1) * (1 if kind == "finetune" else EVALUATION_SPEEDUP)
        base = work * (EVALUATION_SPEEDUP if kind == "evaluate" else 1) / rate
        low, high = base * DEFAULT_SPREAD[0] + overhead[0], base * DEFAULT_SPREAD[1] + overhead[1]
        basis = "default table (no finished job of this model on this compute yet)"
    estimate = Estimate(seconds_low=low, seconds_high=high, compute=compute, size=size, instances=instances,
                        free=local, basis=basis, work=work, throughput_key=key)
    return priced(estimate, prices, gpus=gpus, hours=(low / 3600, high / 3600))


def estimate_endpoint(platform: Platform, prices: PriceTable, *, model: str, compute: str | None, instances: int,
                      ttl_hours: float | None, serverless: bool = False) -> Estimate:
    """An endpoint costs its compute for as long as it lives: the time to live, or a day when it has none."""
    hours = ttl_hours if ttl_hours is not None else 24.0
    if serverless:
        tokens = prices.tokens(model)
        return Estimate(seconds_low=0, seconds_high=0, size="serverless", free=False, usd_low=0.0, usd_high=0.0,
                        hourly_usd=0.0, price_source=f"{prices.source}, read {prices.read}",
                        tokens=tokens.model_dump() if tokens else {"input": math.nan, "output": math.nan})
    local = platform.name == "local"
    estimate = Estimate(seconds_low=hours * 3600, seconds_high=hours * 3600, compute=compute, instances=instances,
                        size=None if local else platform.vm_size(compute), free=local,
                        basis=f"{hours:g} h time to live" if ttl_hours is not None else "one day (no time to live)")
    return priced(estimate, prices, gpus=platform.compute_gpus(compute), hours=(hours, hours))


def priced(estimate: Estimate, prices: PriceTable, *, gpus: int | None, hours: tuple[float, float]) -> Estimate:
    instances = max(estimate.instances, 1)
    gpu_count = gpus or 0
    update: dict[str, Any] = {"gpu_hours_low": gpu_count * instances * hours[0],
                              "gpu_hours_high": gpu_count * instances * hours[1],
                              "price_source": f"{prices.source}, read {prices.read}"}
    if estimate.free:
        update.update(usd_low=0.0, usd_high=0.0, hourly_usd=0.0, gpu_hours_low=0.0, gpu_hours_high=0.0)
    else:
        hourly = prices.hourly(estimate.size)
        update.update(hourly_usd=hourly, usd_low=None if hourly is None else hourly * instances * hours[0],
                      usd_high=None if hourly is None else hourly * instances * hours[1])
    return estimate.model_copy(update=update)


def actual_usd(estimate: Estimate | None, seconds: float) -> float:
    """What `seconds` of the estimated compute cost at its hourly price (nothing locally or unpriced)."""
    if estimate is None or estimate.free or not estimate.hourly_usd:
        return 0.0
    return estimate.hourly_usd * max(estimate.instances, 1) * seconds / 3600


def month(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m")


class Charge(BaseModel):
    """One job's or endpoint's entry in a month's spend: who and where it is charged to, and how much."""

    subject: str
    user: str
    channel: str | None = None
    groups: list[str] = []
    usd: float
    actual: bool = False
    what: str = ""


def charge(redis: Redis, entry: Charge, *, now: datetime | None = None, when: str | None = None) -> None:
    """Set `entry` as its subject's charge in the month (`when`, default this one): the estimate first,
    then the actual cost replaces it, never both."""
    redis.hset(keys.spend(when or month(now)), entry.subject, entry.model_dump_json())


def charged(redis: Redis, subject: str, *, when: str) -> Charge | None:
    raw = redis.hget(keys.spend(when), subject)
    return Charge.model_validate_json(raw) if raw else None


def charges(redis: Redis, *, when: str | None = None) -> list[Charge]:
    return [Charge.model_validate_json(raw) for raw in redis.hvals(keys.spend(when or month()))]


def spent(entries: list[Charge], *, user: str | None = None, channel: str | None = None,
          group: str | None = None) -> float:
    return sum(e.usd for e in entries if (user is None or e.user == user) and (channel is None or e.channel == channel)
               and (group is None or group in e.groups))


def usage_table(entries: list[Charge]) -> dict[str, dict[str, float]]:
    """This month's spend per user and per channel, largest first."""
    users: dict[str, float] = {}
    channels: dict[str, float] = {}
    for e in entries:
        users[e.user] = users.get(e.user, 0.0) + e.usd
        if e.channel:
            channels[e.channel] = channels.get(e.channel, 0.0) + e.usd
    order = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
    return {"users": order(users), "channels": order(channels)}
