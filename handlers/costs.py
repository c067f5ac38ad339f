"""`costs`, and the cost checks every costly request passes: its estimate, the budgets it counts against,
an endpoint's time to live.

Each request is estimated before it is recorded (`estimate_request`), and the estimate travels with it:
into the form before Submit, the CLI's output and `--json`, the job record. A request that would take a
monthly budget of the policy (`costs.budgets`, per user, channel and user group) over the limit is refused
with the numbers, or sent for approval where the policy says `over_budget: approve`. `costs` shows this
month's spend per user and channel and the budgets that apply to whoever asks.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from handlers import policy
from handlers.errors import UserError
from platforms.base import ModelCard
from platforms.prices import load_prices, refresh, write
from workers import costs, timers
from workers.costs import Estimate
from workers.runtime import Runtime

_TTL = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>m|min|h|d)?", re.IGNORECASE)
_UNIT_HOURS = {"m": 1 / 60, "min": 1 / 60, "h": 1.0, "d": 24.0, None: 1.0}
NEVER = 0.0  # a time to live of 0 hours: the endpoint runs until someone deletes it


def parse_ttl(text: str) -> float:
    """`8h`, `90m`, `2d`, `8` (hours) or `never` → hours (NEVER for never)."""
    text = text.strip()
    if text.lower() == "never":
        return NEVER
    match = _TTL.fullmatch(text)
    if match is None or float(match["number"]) <= 0:
        raise UserError(f'"{text[:40]}" is not a time to live', hint='Use hours like 8h, minutes like 90m, days like 2d, or "never"',
                        field="ttl")
    return float(match["number"]) * _UNIT_HOURS[(match["unit"] or "").lower() or None]


def resolve_ttl(rt: Runtime, actor: policy.Actor, ttl_hours: float | None) -> float:
    """The endpoint's time to live: as asked, else the policy's default for the platform (local or paid);
    "never" only for whoever the policy's `never_expire` names (and admins)."""
    rules = policy.current()
    if ttl_hours is None:
        return rules.costs.endpoint_ttl_hours["local" if rt.platform.name == "local" else "paid"]
    if ttl_hours == NEVER and not (actor.user in rules.admins or rules.costs.never_expire.matches(actor)):
        raise UserError("you may not deploy an endpoint that never ends",
                        hint=f"Give it a time to live (e.g. 8h); it can be kept longer with its Keep button. "
                             f"{rules.who_grants()}", field="ttl")
    return ttl_hours


def _spec(spec: Any) -> dict[str, Any]:
    return spec if isinstance(spec, dict) else spec.model_dump(mode="json")


def estimate_request(rt: Runtime, kind: str, spec: Any, *, rows: int = 0) -> Estimate | None:
    """The estimate of a fine-tune, evaluation or deploy (None for imports, which copy a model)."""
    data = _spec(spec)
    prices = rt.costs.prices
    if kind == "deploy":
        ttl = data.get("ttl_hours")
        compute = data.get("compute")
        if compute is None and not data.get("serverless") and rt.platform.name != "local":
            # Managed compute defaults to the first size the model lists (as the platform deploys it).
            compute = next(iter(rt.platform.get_model(data["model"]).inference_compute), None)
        return costs.estimate_endpoint(rt.platform, prices, model=data["model"], compute=compute,
                                       instances=data.get("instances", 1), ttl_hours=ttl or None,
                                       serverless=data.get("serverless", False))
    if kind == "finetune":
        hyper = data.get("hyperparameters") or {}
        return costs.estimate_job(rt.redis, rt.platform, prices, kind=kind, model=data["model"],
                                  compute=data.get("compute"), instances=data.get("instances", 1), rows=rows,
                                  epochs=hyper.get("epochs", 3), max_length=hyper.get("max_length", 128))
    if kind == "evaluate":
        return costs.estimate_job(rt.redis, rt.platform, prices, kind=kind, model=data["model"],
                                  compute=data.get("compute"), instances=1, rows=rows,
                                  max_length=data.get("max_length", 256))
    return None


FORM_ESTIMATES = 5  # compute choices a form prices; each may cost a read of a cluster's size


def form_estimates(rt: Runtime, kind: str, card: ModelCard, *, rows: int = 0, actor: policy.Actor | None = None,
                   serverless: bool = False) -> list[tuple[str, Estimate]]:
    """What the form's first compute choices would cost with its default settings (one instance, the
    default epochs and length; an endpoint for the policy's default time to live), shown before Submit."""
    if serverless:
        estimate = costs.estimate_endpoint(rt.platform, rt.costs.prices, model=card.ref, compute=None, instances=1,
                                           ttl_hours=None, serverless=True)
        return [("serverless", estimate)]
    options = rt.platform.compute_options(kind, model=card)[:FORM_ESTIMATES]
    ttl = resolve_ttl(rt, actor or policy.actor("form"), None) if kind == "deploy" else None
    found = []
    for option in options:
        spec: dict[str, Any] = {"model": card.ref, "compute": option.name, "instances": 1, "ttl_hours": ttl}
        estimate = estimate_request(rt, kind, spec, rows=rows)
        if estimate is not None:
            found.append((option.name, estimate))
    return found


def comparison_estimates(rt: Runtime, cards: list[ModelCard], *, rows: int = 0,
                         actor: policy.Actor | None = None) -> list[tuple[str, Estimate]]:
    """A comparison is one evaluation per model: its GPU-hours and money are theirs added up, its
    time runs from the longest one (all in parallel) to all of them one after another."""
    per_model = [dict(form_estimates(rt, "evaluate", card, rows=rows, actor=actor)) for card in cards]
    found = []
    for name in per_model[0] if per_model else {}:
        parts = [estimates[name] for estimates in per_model if name in estimates]

        def total(field: str) -> float | None:
            values = [getattr(part, field) for part in parts]
            return None if any(v is None for v in values) else sum(values)

        found.append((name, parts[0].model_copy(update={
            "seconds_low": max(p.seconds_low for p in parts), "seconds_high": sum(p.seconds_high for p in parts),
            **{field: total(field) for field in ("gpu_hours_low", "gpu_hours_high", "usd_low", "usd_high")}})))
    return found


def budget_problem(rt: Runtime, actor: policy.Actor, estimate: Estimate | None) -> str | None:
    """Why the request would go over a monthly budget, with the numbers; None when it fits them all."""
    needed = (estimate.usd_high or 0.0) if estimate else 0.0
    limits = policy.current().costs.budgets.limits(actor)
    if not limits or needed <= 0:
        return None
    entries = costs.charges(rt.redis)
    for scope, who, budget in limits:
        used = costs.spent(entries, **{scope: who})
        if used + needed > budget:
            owner = "you" if scope == "user" else f"{scope} {policy.mention(who)}"
            return (f"{costs.money(used)} of {costs.money(budget)} used this month by {owner}; "
                    f"this needs ≈ {costs.money(needed)}")
    return None


def check_budget(rt: Runtime, actor: policy.Actor, estimate: Estimate | None) -> bool:
    """True when the request must wait for an approver because of a budget; raises when it is refused."""
    problem = budget_problem(rt, actor, estimate)
    if problem is None:
        return False
    rules = policy.current()
    if rules.costs.over_budget == "approve":
        return True
    raise UserError(f"over budget: {problem}",
                    hint=f"Choose smaller compute, fewer instances or epochs, or ask for more budget. {rules.who_grants()}",
                    field="compute")


def charge_request(rt: Runtime, job_id: str, actor: policy.Actor, estimate: Estimate | None) -> None:
    if estimate is None:
        return
    costs.charge(rt.redis, costs.Charge(subject=job_id, user=actor.user, channel=actor.channel, groups=actor.groups,
                                        usd=estimate.usd_high or 0.0, what=estimate.summary()))


class BudgetUse(BaseModel):
    scope: str
    who: str
    budget: float
    used: float


class CostReport(BaseModel):
    """This month's spend: per user and per channel, what `user` spent, and the budgets that apply to them."""

    month: str
    users: dict[str, float]
    channels: dict[str, float]
    yours: float
    budgets: list[BudgetUse]
    price_source: str
    prices_read: str


def costs_report(rt: Runtime, user: str, channel: str | None = None) -> CostReport:
    entries = costs.charges(rt.redis)
    table = costs.usage_table(entries)
    actor = policy.actor(user, channel)
    budgets = [BudgetUse(scope=scope, who=who, budget=budget, used=costs.spent(entries, **{scope: who}))
               for scope, who, budget in policy.current().costs.budgets.limits(actor)]
    prices = rt.costs.prices
    return CostReport(month=costs.month(), users=table["users"], channels=table["channels"],
                      yours=costs.spent(entries, user=user), budgets=budgets, price_source=prices.source,
                      prices_read=prices.read)


def refresh_prices(rt: Runtime, path: Any) -> list[str]:
    """Read the price table again from Azure's Retail Prices API and write it to FMBOT_PRICES; what was
    not found is returned (those sizes keep their price)."""
    if path is None:
        raise UserError("FMBOT_PRICES is not set, so there is nowhere to write refreshed prices",
                        hint="Set FMBOT_PRICES to the YAML file the team's prices live in", field="FMBOT_PRICES")
    table, missing = refresh(rt.costs.prices)
    write(table, path)
    load_prices.cache_clear()
    rt.costs.prices = load_prices(path)
    return missing


def set_digest(rt: Runtime, target: Any, on: bool) -> str:
    """`costs digest on|off` in a channel: its cost digest every FMBOT_DIGEST_INTERVAL_HOURS, or none."""
    if on:
        first = timers.digest_on(rt, target)
        return f"This channel gets a cost digest every {rt.costs.digest_interval_hours:g} h, the first at {first:%Y-%m-%d %H:%M} UTC."
    timers.digest_off(rt, target.channel)
    return "This channel gets no cost digest any more."


def keep_endpoint(rt: Runtime, name: str, user: str) -> timers.Lease:
    """The owner's (or an admin's) Keep button: FMBOT_TTL_EXTENSION_HOURS more."""
    held = timers.lease(rt, name)
    if held is None:
        raise UserError(f"{name} has no time to live to extend", hint="It may have been deleted; see `endpoints`")
    if user != held.owner and user not in policy.current().admins:
        raise UserError(f"{name} was deployed by someone else, so you cannot keep it",
                        hint=f"Ask {policy.mention(held.owner)}, or an admin")
    return timers.extend(rt, name, rt.costs.ttl_extension_hours)
