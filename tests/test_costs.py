"""Costs: the price table, estimates from throughput history, monthly budgets, timers that fire once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from handlers import policy
from handlers.costs import budget_problem, check_budget, costs_report, parse_ttl, resolve_ttl
from handlers.errors import UserError
from tests.azure_fixtures import *  # noqa: F403 (the Azure stand-in's fixtures)
from platforms.prices import PricesError, list_price, load_prices, refresh
from workers import costs, keys, timers
from workers.costs import Charge, CostConfig, Estimate, estimate_job

RETAIL = Path(__file__).parent / "data" / "azure" / "retail-prices"


def test_the_shipped_price_table_says_where_and_when_its_prices_come_from() -> None:
    table = load_prices()
    assert table.currency == "USD" and table.region == "eastus" and table.read and "Azure" in table.source
    assert table.hourly("standard_nc24ads_a100_v4") == table.vm_sizes["Standard_NC24ads_A100_v4"] > 0
    assert table.hourly("Standard_Unknown") is None


def test_a_team_file_overrides_and_adds_sizes_and_a_broken_one_names_the_field(tmp_path: Path) -> None:
    team = tmp_path / "prices.yaml"
    team.write_text("read: '2026-12-01'\nvm_sizes: {Standard_NC24ads_A100_v4: 2.5, Standard_Custom: 1.0}\n")
    table = load_prices(team)
    assert table.hourly("Standard_NC24ads_A100_v4") == 2.5 and table.hourly("Standard_Custom") == 1.0
    assert table.hourly("Standard_D4s_v3") == load_prices().hourly("Standard_D4s_v3")
    assert table.read == "2026-12-01"
    broken = tmp_path / "broken.yaml"
    broken.write_text("vm_sizes: {Standard_X: cheap}\n")
    with pytest.raises(PricesError) as caught:
        load_prices(broken)
    assert "vm_sizes.Standard_X" in str(caught.value) and caught.value.field == "FMBOT_PRICES"


class RetailPricesStandIn:
    """Serves Microsoft's published Retail Prices samples (tests/data/azure/retail-prices, from the API's
    documentation) as the API pages them: at most one item a page here, with NextPageLink to the next."""

    def __init__(self, items: list[dict]):
        self.items, self.queries = items, []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                standin.queries.append(query)
                skip = int(query.get("$skip", ["0"])[0])
                page = standin.items[skip:skip + 1]
                following = skip + 1 < len(standin.items)
                body = {"Items": page, "NextPageLink": f"{standin.url}?$skip={skip + 1}" if following else None}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/retail/prices"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_refresh_pages_through_the_api_and_never_takes_a_spot_devtest_or_reserved_price_for_a_list_price() -> None:
    items = [json.loads((RETAIL / name).read_text()) for name in ("devtest_item.json", "reservation_item.json",
                                                                  "eur_item.json")]
    table = load_prices().model_copy(update={"vm_sizes": {"Standard_F16s": 0.8}})
    standin = RetailPricesStandIn(items)
    try:
        refreshed, missing = refresh(table, url=standin.url)
    finally:
        standin.close()
    assert len(standin.queries) == 3  # the first page and two NextPageLinks
    first = standin.queries[0]
    assert "armSkuName eq 'Standard_F16s'" in first["$filter"][0] and "priceType eq 'Consumption'" in first["$filter"][0]
    assert first["currencyCode"] == ["USD"]
    assert refreshed.vm_sizes["Standard_F16s"] == 0.8, "a Spot, DevTest or reservation price replaced the list price"
    assert missing == ["Standard_F16s: no pay-as-you-go USD price in eastus (kept 0.8)"]
    assert refreshed.read == datetime.now(UTC).date().isoformat() and "Retail Prices API" in refreshed.source
    assert list_price(items, "EUR") is None  # the EUR sample is a Spot meter


def test_a_refresh_that_cannot_reach_the_api_says_so_and_changes_nothing() -> None:
    with pytest.raises(PricesError, match="could not be read"):
        refresh(load_prices(), url="http://127.0.0.1:9/api/retail/prices", timeout=2)


def test_ttl_words_become_hours_and_bad_ones_name_the_field() -> None:
    assert parse_ttl("8h") == 8 and parse_ttl("90m") == 1.5 and parse_ttl("2d") == 48 and parse_ttl("12") == 12
    assert parse_ttl("never") == 0
    with pytest.raises(UserError) as caught:
        parse_ttl("soon")
    assert caught.value.field == "ttl"


def test_summaries_read_as_the_issue_writes_them() -> None:
    paid = Estimate(seconds_low=5400, seconds_high=7200, gpu_hours_low=1.5, gpu_hours_high=2.0, usd_low=4.2,
                    usd_high=6.1, hourly_usd=3.673, size="Standard_NC24ads_A100_v4", instances=1)
    assert paid.summary() == "≈ 1.5–2 GPU-hours ≈ $4.20–6.10 on Standard_NC24ads_A100_v4 ×1"
    local = Estimate(seconds_low=90, seconds_high=240, compute="cpu", free=True)
    assert local.summary() == "≈ 1.5–4 min on cpu ×1; the local platform costs nothing"


def test_estimates_come_from_the_default_table_until_the_family_has_history(redis, models_dir: Path) -> None:
    from platforms.local import LocalPlatform

    platform = LocalPlatform(models_dir, seed=False, redis=redis)
    prices = load_prices()
    first = estimate_job(redis, platform, prices, kind="finetune", model="tiny-bert:1", compute="cpu", instances=1,
                         rows=1000, epochs=2, max_length=128)
    assert first.free and first.usd_high == 0 and "default table" in first.basis
    assert first.work == 2000 and first.seconds_low < first.seconds_high
    # Two finished fine-tunes of the family (a fine-tune of it counts as the family) on cpu ran at 50 and 100/s.
    costs.record_throughput(redis, first.throughput_key, 50.0)
    costs.record_throughput(redis, first.throughput_key, 100.0)
    again = estimate_job(redis, platform, prices, kind="finetune", model="tiny-bert-ft:3", compute="cpu",
                         instances=1, rows=1000, epochs=2, max_length=256)
    assert again.throughput_key == first.throughput_key and "2 earlier jobs" in again.basis
    assert again.work == 4000
    assert again.seconds_low == pytest.approx(4000 / 110) and again.seconds_high == pytest.approx(4000 / 45)


def test_an_azure_estimate_prices_the_clusters_real_vm_size(platform, redis) -> None:
    estimate = estimate_job(redis, platform, load_prices(), kind="finetune", model="bert-base-uncased",
                            compute="gpu-cluster", instances=2, rows=10_000, epochs=3)
    assert estimate.size == "Standard_NC24ads_A100_v4" and estimate.hourly_usd == 3.673 and not estimate.free
    assert estimate.usd_high == pytest.approx(3.673 * 2 * estimate.seconds_high / 3600)
    assert estimate.gpu_hours_high == pytest.approx(1 * 2 * estimate.seconds_high / 3600)
    assert "Standard_NC24ads_A100_v4 ×2" in estimate.summary() and "$" in estimate.summary()


def test_budgets_refuse_with_the_numbers_or_send_for_approval(redis, tmp_path: Path) -> None:
    from workers.ledger import Ledger
    from workers.queues import job_queue
    from workers.runtime import Runtime

    rt = Runtime(redis=redis, ledger=Ledger(redis), queue=job_queue(redis), notifier=None,
                 platform_factory=lambda: None, costs=CostConfig())
    rules = policy.Policy.model_validate({"costs": {"budgets": {"users": {"U0ALICE": 200}, "channels": {"C0ML": 1000}}}})
    policy.install(rules)
    try:
        costs.charge(redis, Charge(subject="ft-1", user="U0ALICE", channel="C0ML", usd=180.0))
        costs.charge(redis, Charge(subject="ft-2", user="U0BOB", channel="C0ML", usd=700.0))
        alice = policy.actor("U0ALICE", "C0ML")
        need = Estimate(seconds_low=1, seconds_high=1, usd_low=30, usd_high=35)
        assert budget_problem(rt, alice, need) == "$180 of $200 used this month by you; this needs ≈ $35.00"
        with pytest.raises(UserError, match=r"over budget: \$180 of \$200"):
            check_budget(rt, alice, need)
        assert not check_budget(rt, alice, need.model_copy(update={"usd_high": 15.0}))
        # The estimate is replaced by the actual cost, never added to it.
        costs.charge(redis, Charge(subject="ft-1", user="U0ALICE", channel="C0ML", usd=100.0, actual=True))
        assert not check_budget(rt, alice, need)
        policy.install(rules.model_copy(update={"costs": rules.costs.model_copy(update={"over_budget": "approve"})}))
        assert check_budget(rt, policy.actor("U0ALICE", "C0ML"), need.model_copy(update={"usd_high": 150.0}))
        report = costs_report(rt, "U0ALICE", "C0ML")
        assert report.users == {"U0BOB": 700.0, "U0ALICE": 100.0} and report.channels == {"C0ML": 800.0}
        assert report.yours == 100.0 and {(b.scope, b.budget, b.used) for b in report.budgets} == {
            ("user", 200.0, 100.0), ("channel", 1000.0, 800.0)}
    finally:
        policy.install(policy.Policy())


def test_never_is_a_time_to_live_only_the_policy_may_grant(redis) -> None:
    from workers.ledger import Ledger
    from workers.queues import job_queue
    from workers.runtime import Runtime

    class Local:
        name = "local"

    rt = Runtime(redis=redis, ledger=Ledger(redis), queue=job_queue(redis), notifier=None,
                 platform_factory=lambda: Local())
    policy.install(policy.Policy.model_validate({"costs": {"endpoint_ttl_hours": {"local": 6, "paid": 12},
                                                            "never_expire": {"users": ["U0OPS"]}}}))
    try:
        assert resolve_ttl(rt, policy.actor("U0ANY"), None) == 6
        assert resolve_ttl(rt, policy.actor("U0OPS"), 0.0) == 0.0
        with pytest.raises(UserError, match="never ends") as caught:
            resolve_ttl(rt, policy.actor("U0ANY"), 0.0)
        assert caught.value.field == "ttl"
    finally:
        policy.install(policy.Policy())


def test_a_timer_fires_once_a_moved_one_fires_at_its_new_time_and_a_cancelled_one_not_at_all(redis) -> None:
    from workers import runtime
    from workers.ledger import Ledger
    from workers.queues import job_queue
    from workers.runtime import Runtime

    fired: list[str] = []
    timers.ACTIONS["test_record"] = lambda rt, subject: fired.append(subject)
    rt = Runtime(redis=redis, ledger=Ledger(redis), queue=job_queue(redis), notifier=None, platform_factory=lambda: None)
    runtime.install(rt)
    try:
        soon = datetime.now(UTC) + timedelta(seconds=30)
        first = timers.schedule(rt, "test", "a", soon, "test_record")
        moved = timers.schedule(rt, "test", "a", soon + timedelta(seconds=5), "test_record")
        assert rt.queue.scheduled_job_registry.get_job_ids() == [moved.rq_id]
        assert timers.fire("test", "a", first.firing) == "cancelled or moved"
        assert timers.fire("test", "a", moved.firing) == "fired test_record"
        assert timers.fire("test", "a", moved.firing) == "cancelled or moved"
        timers.schedule(rt, "test", "b", soon, "test_record")
        # Two workers taking the same firing (a retried delivery): the marker lets one through.
        rt.redis.set(keys.timer_fired(timers.pending(rt, "test", "b").firing), "1")
        assert timers.fire("test", "b", timers.pending(rt, "test", "b").firing) == "already fired"
        timers.cancel(rt, "test", "b")
        third = timers.schedule(rt, "test", "c", soon, "test_record")
        timers.cancel(rt, "test", "c")
        assert timers.fire("test", "c", third.firing) == "cancelled or moved"
        # Only "a" is left, since this test fired it by hand instead of RQ's scheduler taking it.
        assert rt.queue.scheduled_job_registry.get_job_ids() == [moved.rq_id]
        assert fired == ["a"]
    finally:
        timers.ACTIONS.pop("test_record")
        runtime.install(None)


def test_money_over_fmbot_approval_usd_waits_for_an_approver_and_the_estimate_prices_the_default_size(
        worker_runtime, redis) -> None:
    from handlers.deploy import DeployRequest, start_deploy
    from platforms.base import DeploySpec

    rt, _ = worker_runtime
    rt.costs = CostConfig(approval_usd=5.0)
    # bert-base-uncased deploys on its first listed size, Standard_DS3_v2, for the policy's 24 h on paid compute.
    record = start_deploy(rt, DeployRequest(spec=DeploySpec(model="bert-base-uncased", endpoint="bert-costly"),
                                            requester="U1"))
    hourly = load_prices().hourly("Standard_DS3_v2")
    assert record.spec["ttl_hours"] == 24 and record.estimate.size == "Standard_DS3_v2"
    assert record.estimate.usd_high == pytest.approx(hourly * 24)
    assert record.approval == "pending" and "may cost more than $5.00" in record.message
    assert record.id not in rt.queue.job_ids and timers.pending(rt, "approval-expiry", record.id) is not None
    assert costs.charged(redis, record.id, when=costs.month()).usd == pytest.approx(hourly * 24)
    rt.costs = CostConfig(approval_usd=10.0)
    cheaper = start_deploy(rt, DeployRequest(spec=DeploySpec(model="bert-base-uncased", endpoint="bert-cheap",
                                                             ttl_hours=1), requester="U1"))
    assert cheaper.approval is None and cheaper.estimate.usd_high == pytest.approx(hourly)
