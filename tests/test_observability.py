"""Operations: deploy files agree with the settings model; health, readiness, metrics, logs, doctor, config."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from bot.settings_reference import settings_reference
from bot.observability import Readiness, configure_logging, metrics_page
from bot.redis_server import free_port
from bot.bootstrap import build_runtime
from bot.wsgi import make_server, wsgi_app
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.client import web_client
from handlers.jobs import submit
from tests.helpers import ROOT, doomed_evaluation, fmbot, settings_env, wait_until
from tests.slack_standin import BOT_TOKEN, SIGNING_SECRET, SlackSender, SlackStandIn
from tests.bot_server import BotServer
from workers import telemetry

DEPLOY = ROOT / "deploy"
SETTING_NAMES = {info.env for info in settings_reference()}
FMBOT_IMAGES = ("fmbot", "fmbot:latest")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kubernetes_documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted((DEPLOY / "kubernetes").rglob("*.yaml")) for doc in documents(path)]


def fmbot_env_names() -> dict[str, set[str]]:
    """Every environment variable the deploy files hand to fmbot's own containers, by file."""
    names: dict[str, set[str]] = {}
    compose = documents(DEPLOY / "docker-compose.yml")[0]
    for service in compose["services"].values():
        if service.get("image") in FMBOT_IMAGES:
            names.setdefault("docker-compose.yml", set()).update(service.get("environment", {}))
    for path, doc in kubernetes_documents():
        found = names.setdefault(str(path.relative_to(DEPLOY)), set())
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "fmbot-config":
            found.update(doc["data"])
        if doc.get("kind") == "Secret" and doc["metadata"]["name"] == "fmbot-secrets":
            found.update(doc.get("stringData", {}))
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if container["image"] in FMBOT_IMAGES:
                found.update(env["name"] for env in container.get("env", []))
    return names


def test_deploy_files_reference_only_settings_that_exist():
    names = fmbot_env_names()
    assert names["docker-compose.yml"] >= {"REDIS_URL", "FMBOT_MODELS_DIR", "FMBOT_DATA_DIR"}
    assert names["kubernetes/base/configmap.yaml"] >= {"FMBOT_PLATFORM"}
    assert names["kubernetes/secret.example.yaml"] >= {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REDIS_URL"}
    unknown = {file: sorted(found - SETTING_NAMES) for file, found in names.items() if found - SETTING_NAMES}
    assert unknown == {}, f"not fields of bot/settings.py: {unknown}"


def test_kubernetes_has_probes_secrets_and_workload_identity():
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for path, doc in kubernetes_documents()
               if path.parent.name == "base" and doc["kind"] != "Kustomization"}
    azure = {doc["kind"]: doc for doc in (documents(path)[0] for path in (DEPLOY / "kubernetes/azure").glob("*.yaml"))}
    bot = by_name[("Deployment", "fmbot-bot")]["spec"]["template"]["spec"]["containers"][0]
    assert bot["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert bot["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"secretRef": {"name": "fmbot-secrets"}} in bot["envFrom"]
    assert by_name[("Deployment", "fmbot-worker")]["spec"]["replicas"] >= 1
    assert ("StatefulSet", "fmbot-redis") in by_name
    assert by_name[("Deployment", "fmbot-worker")]["spec"]["template"]["spec"]["serviceAccountName"] == "fmbot"
    assert "azure.workload.identity/client-id" in azure["ServiceAccount"]["metadata"]["annotations"]
    assert azure["ConfigMap"]["data"]["FMBOT_PLATFORM"] == "azureml"
    pods = azure["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert pods["azure.workload.identity/use"] == "true"


def redis_settings() -> list[tuple[str, dict[str, str]]]:
    """Each Redis configuration in deploy/, as {directive: value}."""
    compose = documents(DEPLOY / "docker-compose.yml")[0]
    args = compose["services"]["redis"]["command"][1:]
    found = [("docker-compose.yml", {args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args), 2)})]
    for path, doc in kubernetes_documents():
        if doc.get("kind") == "ConfigMap" and "redis.conf" in doc.get("data", {}):
            lines = [line.split(None, 1) for line in doc["data"]["redis.conf"].splitlines() if line.strip()]
            found.append((path.name, {key: value for key, value in lines}))
    return found


def test_every_redis_in_deploy_is_durable():
    configs = redis_settings()
    assert [name for name, _ in configs] == ["docker-compose.yml", "redis.yaml"]
    for name, config in configs:
        assert config.get("appendonly") == "yes", name
        assert config.get("appendfsync") == "everysec", name
        assert config.get("maxmemory-policy") == "noeviction", name


def test_env_example_documents_every_setting():
    text = (DEPLOY / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = SETTING_NAMES - listed
    assert not missing, f"regenerate with `fmbot config --env-example > deploy/.env.example`; missing {missing}"
    assert not listed - SETTING_NAMES


def test_slack_manifests():
    http = documents(DEPLOY / "slack-app-manifest.yaml")[0]
    socket = documents(DEPLOY / "slack-app-manifest.socket-mode.yaml")[0]
    for manifest in (http, socket):
        assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {"commands", "chat:write", "files:read",
                                                                   "files:write", "im:write"}
        assert manifest["features"]["slash_commands"][0]["command"] == "/fm"
        assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert http["settings"]["socket_mode_enabled"] is False
    assert http["features"]["slash_commands"][0]["url"] == "https://YOUR_HOST/slack/events"
    assert http["settings"]["interactivity"]["message_menu_options_url"] == "https://YOUR_HOST/slack/events"
    assert socket["settings"]["socket_mode_enabled"] is True


# ---------------------------------------------------------------------- the running bot


class Served(BotServer):
    """A WSGI application under waitress on a free port, closed the way the e2e bot is closed."""

    def __init__(self, application):
        self.server = make_server(application, "127.0.0.1", 0, threads=Settings().fmbot_http_threads)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url.replace("/slack/events", path), timeout=10)


class OpsBot(Served):
    """The e2e bot, with readiness and metrics wired as `fmbot serve` wires them."""

    def __init__(self, settings: Settings):
        self.runtime = build_runtime(settings)
        client = web_client(settings)
        app = create_app(settings, self.runtime, client)
        super().__init__(wsgi_app(app, Readiness.from_settings(settings, client)))


@pytest.fixture
def ops_bot(slack_settings: Settings) -> Iterator[OpsBot]:
    server = OpsBot(slack_settings)
    yield server
    server.close()


def metric(page: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)$"
    found = re.search(pattern, page, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def json_logs(slack_settings: Settings) -> Iterator[io.StringIO]:
    """fmbot's own logging set-up writing to a buffer; pytest's handlers are put back afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(slack_settings.replace(fmbot_log_level="DEBUG"), stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_health_readiness_and_metrics_move_with_commands(ops_bot: OpsBot, slack: SlackStandIn, json_logs):
    assert ops_bot.get("/healthz").status_code == 200
    ready = ops_bot.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "failed": {}}
    assert ops_bot.get("/readyz").status_code == 200
    assert len(slack.of("auth.test")) == 1, "the Slack answer is cached between probes"

    before = ops_bot.get("/metrics").text
    slack.fail_next(503)
    record = submit(ops_bot.runtime, doomed_evaluation())
    methods = [c.method for c in slack.calls]
    assert methods.index("chat.postMessage!503") < methods.index("chat.postMessage"), methods
    sender = SlackSender(ops_bot.url)
    for command in ("help", "nosuchthing", "status ft-missing"):
        sender.ask(command, slack)
    queued = ops_bot.get("/metrics")
    assert queued.headers["Content-Type"].startswith("text/plain")
    assert metric(queued.text, "fmbot_queue_depth", queue="fmbot") == 1
    sender.ask(f"cancel {record.id}", slack)

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    after = wait_until(lambda: (page := ops_bot.get("/metrics").text) and
                       metric(page, "fmbot_commands_total", command="cancel", outcome="ok") == 1 and page, 10)

    assert moved("fmbot_commands_total", command="help", outcome="ok") == 1
    assert moved("fmbot_commands_total", command="unknown", outcome="ok") == 1
    assert moved("fmbot_commands_total", command="status", outcome="refused") == 1
    assert moved("fmbot_commands_total", command="cancel", outcome="ok") == 1
    assert moved("fmbot_ack_seconds_count") == 4
    assert metric(after, "fmbot_ack_seconds_bucket", le="3.0") == metric(after, "fmbot_ack_seconds_count")
    assert metric(after, "fmbot_jobs_total", kind="evaluate", state="queued") == 1
    assert metric(after, "fmbot_jobs_total", kind="evaluate", state="canceled") == 1
    assert metric(after, "fmbot_job_duration_seconds_count", kind="evaluate") == 1
    assert metric(after, "fmbot_ledger_jobs", kind="evaluate", state="canceled") == 1
    assert metric(after, "fmbot_queue_depth", queue="fmbot") == 0
    assert metric(after, "fmbot_redis_up") == 1
    assert moved("fmbot_notification_retries_total", reason="servererror") == 1

    logging.getLogger("fmbot.test").info("a careless line with %s and %s", BOT_TOKEN, SIGNING_SECRET)
    logged = json_logs.getvalue()
    assert BOT_TOKEN not in logged and SIGNING_SECRET not in logged
    lines = [json.loads(line) for line in logged.splitlines()]
    assert lines and all({"ts", "level", "logger", "message", "trace_id", "job_id"} <= set(line) for line in lines)
    assert "[redacted]" in lines[-1]["message"]


def test_job_duration_histogram_is_cumulative_on_metrics(redis):
    """Workers count each duration once, in its own bucket; /metrics shows Prometheus's cumulative buckets."""
    for seconds in (0.5, 3, 4, 100, 2 * 24 * 3600):
        telemetry.record_job_state(redis, "evaluate", "completed", seconds=seconds)
    page = metrics_page(redis).decode()

    def bucket(le: str) -> float:
        return metric(page, "fmbot_job_duration_seconds_bucket", kind="evaluate", le=le)

    assert [bucket(le) for le in ("1", "5", "15", "60", "300", "86400", "+Inf")] == [1, 3, 3, 3, 4, 4, 5]
    assert metric(page, "fmbot_job_duration_seconds_count", kind="evaluate") == 5
    assert metric(page, "fmbot_job_duration_seconds_sum", kind="evaluate") == 0.5 + 3 + 4 + 100 + 2 * 24 * 3600
    assert metric(page, "fmbot_jobs_total", kind="evaluate", state="completed") == 5


def test_unexpected_error_names_the_trace(ops_bot: OpsBot, slack: SlackStandIn, json_logs):
    ops_bot.runtime.platform_factory = lambda: 1 / 0
    text = SlackSender(ops_bot.url).ask("quota", slack, answers=2)[1]["text"]
    trace = re.search(r"trace id ([0-9a-f]{16})", text)
    assert trace, text
    logged = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert any(line["trace_id"] == trace.group(1) and line["level"] == "ERROR" for line in logged)


def test_readyz_fails_when_redis_is_unreachable(slack_settings: Settings, slack: SlackStandIn):
    bot = OpsBot(slack_settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        response = bot.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["ready"] is False and list(body["failed"]) == ["redis"]
        assert bot.get("/healthz").status_code == 200
        assert metric(bot.get("/metrics").text, "fmbot_redis_up") == 0
    finally:
        bot.close()


def test_readyz_fails_when_slack_refuses_the_token(slack_settings: Settings, slack: SlackStandIn):
    bot = OpsBot(slack_settings.replace(slack_bot_token="xoxb-revoked"))
    try:
        response = bot.get("/readyz")
        assert response.status_code == 503
        assert "invalid_auth" in response.json()["failed"]["slack"]
    finally:
        bot.close()


# ---------------------------------------------------------------------- doctor and config


def test_doctor_reports_missing_token_and_unreachable_redis(settings: Settings):
    broken = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    result = fmbot(broken, "doctor", "--json")
    assert result.returncode == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["slack token"]["status"] == "problem"
    assert "SLACK_BOT_TOKEN is not set" in checks["slack token"]["detail"]
    assert checks["slack token"]["fix"]
    assert checks["redis"]["status"] == "problem" and "did not answer" in checks["redis"]["detail"]
    assert checks["workers"]["status"] == "skipped"
    assert checks["models folder"]["status"] == "ok"


def test_doctor_passes_slack_and_checks_redis_persistence(slack_settings: Settings, slack: SlackStandIn):
    result = fmbot(slack_settings, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["slack token"]["status"] == "ok" and "fmbot" in checks["slack token"]["detail"]
    assert checks["slack signing secret"]["status"] == "ok"
    assert checks["redis"]["status"] == "ok"
    # the test Redis runs without AOF, which is exactly what doctor must flag
    assert checks["redis persistence"]["status"] == "problem"
    assert "appendonly is no" in checks["redis persistence"]["detail"]
    assert checks["workers"]["status"] == "problem"
    assert result.returncode == 1
    assert BOT_TOKEN not in result.stdout + result.stderr


def test_config_masks_secrets(slack_settings: Settings):
    with_password = slack_settings.replace(redis_url="redis://:hunter2-password@127.0.0.1:1/0",
                                           slack_app_token="xapp-1-A0001-secret")
    for args in (("config",), ("config", "--json")):
        result = fmbot(with_password, *args)
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        for secret in (BOT_TOKEN, SIGNING_SECRET, "hunter2-password", "xapp-1-A0001-secret"):
            assert secret not in output
    shown = json.loads(result.stdout)
    assert set(shown) == SETTING_NAMES
    assert shown["SLACK_BOT_TOKEN"] == "********" and shown["AZURE_SUBSCRIPTION_ID"] is None
    assert shown["REDIS_URL"] == "redis://:********@127.0.0.1:1/0"


def test_fmbot_serve_process_answers_probes_and_logs_json(slack_settings: Settings, slack: SlackStandIn,
                                                          tmp_path: Path):
    port, internal_port = free_port(), free_port()
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env={**settings_env(slack_settings.replace(fmbot_internal_port=internal_port)),
                                    "FMBOT_LOG_LEVEL": "DEBUG"}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base, internal = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{internal_port}"
    try:
        wait_until(lambda: _answers(f"{base}/healthz") and _answers(f"{internal}/healthz"), timeout=60)
        assert requests.get(f"{internal}/readyz", timeout=10).status_code == 200
        assert "*fmbot*" in SlackSender(f"{base}/slack/events").ask("help", slack)[0]["text"]
        page = wait_until(lambda: (text := requests.get(f"{internal}/metrics", timeout=10).text) and
                          metric(text, "fmbot_commands_total", command="help", outcome="ok") == 1 and text, 10)
        assert metric(page, "fmbot_ack_seconds_count") == 1
        for private in ("/readyz", "/metrics"):
            assert requests.get(f"{base}{private}", timeout=10).status_code == 404, "internal page on the public port"
    finally:
        process.terminate()
        process.wait(timeout=20)
    log.seek(0)
    output = log.read()
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any("serving Slack" in line["message"] for line in lines)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_socket_mode_health_server_serves_only_probes(slack_settings: Settings, slack: SlackStandIn):
    health = Served(wsgi_app(None, Readiness.from_settings(slack_settings, web_client(slack_settings))))
    try:
        assert health.get("/healthz").status_code == 200
        assert health.get("/readyz").status_code == 200
        assert metric(health.get("/metrics").text, "fmbot_redis_up") == 1
        assert SlackSender(health.url).command("help").status_code == 404
    finally:
        health.close()


class ScopedSlack(SlackStandIn):
    """The stand-in, answering with the `x-oauth-scopes` header Slack sends for the token."""

    scopes = "commands,chat:write,files:read"

    def _json(self, request, body: dict) -> None:
        self._reply(request, 200, json.dumps(body).encode(), extra={"x-oauth-scopes": self.scopes})


def test_doctor_names_missing_scopes(slack_settings: Settings):
    scoped = ScopedSlack().start()
    try:
        result = fmbot(slack_settings.replace(slack_api_url=scoped.api_url), "doctor", "--json")
    finally:
        scoped.stop()
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["slack scopes"]["status"] == "problem"
    assert checks["slack scopes"]["detail"] == "missing files:write, im:write"
    assert "reinstall" in checks["slack scopes"]["fix"]
