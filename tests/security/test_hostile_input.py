"""Hostile input cannot take the service down: wide files, crafted texts, huge or lying HTTP bodies,
and scrapes of internal pages. Each test plays the input against the running pieces."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests
from redis import Redis

from bot.observability import metrics_page
from bot.slack.ids import CallbackId
from platforms.base import DeploySpec
from platforms.datasets import DatasetError, read_columns
from platforms.local import LocalPlatform
from platforms.tasks import Task
from tests.helpers import DATA
from tests.slack_standin import SlackSender
from tests.test_e2e_slack import chosen_values, data_values, nth_view, open_form
from tests.tiny_models import add_tiny_bert
from workers import keys
from workers.ledger import JobRecord, Ledger, new_job_id

MAX_COLUMNS = 500  # the cap platforms.datasets enforces


def test_a_file_with_thousands_of_keys_is_refused_at_the_mapping_step(bot, slack, slack_settings, tiny_model):
    row = {f"k{i}": i for i in range(20_000)}
    wide = slack.add_file("wide.jsonl", (json.dumps(row) + "\n").encode() * 3, "application/json")
    sender = SlackSender(bot.url)
    view = open_form(sender, slack, f"finetune {tiny_model.split(':')[0]}")
    started = time.monotonic()
    sender.view_submission(view, data_values(tiny_model, wide))
    shown = json.dumps(nth_view(slack, "views.update", 0, CallbackId.FORM_DATA))
    assert time.monotonic() - started < 5
    assert f"fmbot reads at most {MAX_COLUMNS} columns" in shown and "wide.jsonl line 1" in shown
    stored = [bot.runtime.redis.strlen(k) for k in bot.runtime.redis.scan_iter(keys.form("*"))]
    assert all(size < 100_000 for size in stored), f"form state in Redis: {stored} bytes"


def test_one_form_keeps_one_state_key_through_its_steps(bot, slack, tiny_model):
    columns = ",".join(f"column_with_a_long_name_{i}" for i in range(200))
    rows = "\n".join(",".join("x" for _ in range(200)) for _ in range(3))
    wide = slack.add_file("wide.csv", f"input_string,label_string,{columns}\n".encode()
                          + "\n".join(f"great,positive,{r}" for r in rows.splitlines()).encode(), "text/csv")
    sender = SlackSender(bot.url)
    view = open_form(sender, slack, f"finetune {tiny_model.split(':')[0]}")
    sender.view_submission(view, data_values(tiny_model, wide))
    mapping = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    assert mapping["private_metadata"].startswith("redis:")
    sender.view_submission(mapping, chosen_values(mapping))  # the checking view, then the compute step
    slack.wait_for(lambda: len(slack.of("views.update")) >= 2, 30)
    forms = list(bot.runtime.redis.scan_iter(keys.form("*")))
    assert len(forms) == 1, forms


def test_the_csv_header_check_is_linear(tmp_path: Path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(20_000)) + ",c0\n" + ",".join("1" * 20_001) + "\n")
    started = time.monotonic()
    with pytest.raises(DatasetError, match=f"names 20,001 columns; fmbot reads at most {MAX_COLUMNS}"):
        read_columns(path)
    assert time.monotonic() - started < 1.0
    dup = tmp_path / "dup.csv"
    dup.write_text(",".join(f"c{i}" for i in range(MAX_COLUMNS - 1)) + ",c7\n" + ",".join("1" * MAX_COLUMNS) + "\n")
    with pytest.raises(DatasetError, match='names column "c7" twice'):
        read_columns(dup)


def test_a_slack_body_over_the_cap_is_refused_before_the_signature_check(bot):
    started = time.monotonic()
    response = requests.post(bot.url, data=b"payload=" + b"x" * (5 * 1024 * 1024),
                             headers={"Content-Type": "application/x-www-form-urlencoded",
                                      "X-Slack-Request-Timestamp": str(int(time.time())),
                                      "X-Slack-Signature": "v0=00"}, timeout=30)
    assert response.status_code == 413
    assert time.monotonic() - started < 5


def test_the_ledger_gauge_is_not_recomputed_on_every_scrape(redis: Redis):
    ledger = Ledger(redis)
    for _ in range(50):
        ledger.create(JobRecord(id=new_job_id("evaluate"), kind="evaluate", model="m:1", task="text-classification",
                                spec={}, requester="U0USER"))
    metrics_page(redis)

    def mgets() -> int:
        return int(redis.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))

    before = mgets()
    for _ in range(20):
        assert 'fmbot_ledger_jobs{kind="evaluate",state="queued"} 50.0' in metrics_page(redis).decode()
    assert mgets() == before, "each scrape read the ledger's records again"


@pytest.fixture(scope="module")
def endpoint(redis_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "models"
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    ref = add_tiny_bert(root, texts).ref
    platform = LocalPlatform(root, seed=False, redis=Redis.from_url(redis_server.url))
    info = platform.deploy(DeploySpec(model=ref, endpoint="ep-hostile", task=Task.TEXT_CLASSIFICATION))
    yield info.model_copy(update={"key": platform.pick_up_endpoint_key(info.name)})
    platform.delete_endpoint(info.name)


def raw_request(info, head: str, body: bytes = b"", *, timeout: float = 3.0) -> bytes:
    """Send bytes as they are (a lying Content-Length, none at all) and read what comes back."""
    port = int(info.url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_an_endpoint_checks_the_key_before_reading_the_body(endpoint):
    started = time.monotonic()
    answer = raw_request(endpoint, "POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                                   "Content-Length: 9000000")
    assert answer.startswith(b"HTTP/1.0 401") or answer.startswith(b"HTTP/1.1 401"), answer[:80]
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("length", [None, "-1", "abc"])
def test_an_endpoint_refuses_a_missing_or_negative_length(endpoint, length):
    key = endpoint.key.get_secret_value()
    head = f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}"
    if length is not None:
        head += f"\r\nContent-Length: {length}"
    answer = raw_request(endpoint, head, b'{"input_data": ["hi"]}')
    assert b" 411 " in answer.split(b"\r\n")[0], answer[:80]


def test_a_crafted_pair_text_costs_the_endpoint_no_quadratic_time(endpoint):
    key = endpoint.key.get_secret_value()
    crafted = "[CLS]" + "[SEP]" * 4000 + "x"
    started = time.monotonic()
    response = requests.post(endpoint.url, json={"input_data": [crafted]},
                             headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 1.0
    too_long = requests.post(endpoint.url, json={"input_data": ["word " * 20_000]},
                             headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert too_long.status_code == 400 and "send at most 50,000" in too_long.json()["error"]
