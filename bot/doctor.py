"""`fmbot doctor`: is this installation able to work? Each check says ok or what is wrong and how to fix it.

Checks run against the real services with short timeouts, so a hung host shows up as a problem
in seconds instead of a doctor that hangs too.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError, ResponseError

from bot.settings import Settings

REQUIRED_SCOPES = ("commands", "chat:write", "files:read", "files:write", "im:write")
GROUPS_SCOPE = "usergroups:read"  # needed only when the access policy names Slack user groups
NETWORK_TIMEOUT_SECONDS = 5
AZURE_TIMEOUT_SECONDS = 30
Status = Literal["ok", "problem", "skipped"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str = ""


def _ok(name: str, detail: str) -> Check:
    return Check(name=name, status="ok", detail=detail)


def _problem(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status="problem", detail=detail, fix=fix)


def check_slack(settings: Settings) -> list[Check]:
    checks = []
    if settings.slack_signing_secret is None:
        checks.append(_problem("slack signing secret", "SLACK_SIGNING_SECRET is not set",
                               "Copy it from your Slack app's Basic Information page (needed for HTTP mode)"))
    else:
        checks.append(_ok("slack signing secret", "set"))
    if settings.slack_bot_token is None:
        checks.append(_problem("slack token", "SLACK_BOT_TOKEN is not set",
                               "Install the app to your workspace and copy the Bot User OAuth Token (xoxb-...)"))
        return checks
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from bot.slack.client import web_client

    client: WebClient = web_client(settings)
    client.timeout, client.retry_handlers = NETWORK_TIMEOUT_SECONDS, []
    try:
        response = client.auth_test()
    except SlackApiError as exc:
        checks.append(_problem("slack token", f"auth.test refused the token: {exc.response.get('error')}",
                               "Reinstall the app and update SLACK_BOT_TOKEN with the new xoxb- token"))
        return checks
    except Exception as exc:
        checks.append(_problem("slack token", f"cannot reach Slack at {settings.slack_api_url}: {exc}",
                               "Check SLACK_API_URL and the network path (proxy, firewall) to Slack"))
        return checks
    checks.append(_ok("slack token", f"bot {response.get('user')} in team {response.get('team')}"))
    header = next((v for k, v in response.headers.items() if k.lower() == "x-oauth-scopes"), None)
    if header is None:
        checks.append(Check(name="slack scopes", status="skipped", detail="Slack did not report the token's scopes"))
        return checks
    granted = {s.strip() for s in (header[0] if isinstance(header, list) else header).split(",")}
    required = [*REQUIRED_SCOPES, *([GROUPS_SCOPE] if _policy_names_groups(settings) else [])]
    missing = [s for s in required if s not in granted]
    if missing:
        why = (f" ({GROUPS_SCOPE}: the access policy {settings.fmbot_policy} names user groups, and without it "
               "their rules match nobody)") if GROUPS_SCOPE in missing else ""
        checks.append(_problem("slack scopes", f"missing {', '.join(missing)}{why}",
                               "Add them under OAuth & Permissions (or use deploy/slack-app-manifest.yaml) and "
                               "reinstall the app"))
    else:
        checks.append(_ok("slack scopes", ", ".join(required)))
    return checks


def _policy_names_groups(settings: Settings) -> bool:
    """Whether the access policy has group rules; a policy that does not load is the policy check's problem."""
    from handlers.errors import UserError
    from handlers.policy import load_policy

    try:
        return load_policy(settings.fmbot_policy).mentions_groups
    except UserError:
        return False


def check_redis(settings: Settings) -> tuple[list[Check], Redis | None]:
    from bot.settings_reference import mask_url

    redis = Redis.from_url(settings.redis_url, socket_timeout=NETWORK_TIMEOUT_SECONDS,
                           socket_connect_timeout=NETWORK_TIMEOUT_SECONDS)
    try:
        redis.ping()
    except RedisError as exc:
        return [_problem("redis", f"{mask_url(settings.redis_url)} did not answer: {exc}",
                         "Start Redis or fix REDIS_URL (redis://[:password@]host:port/db)")], None
    checks = [_ok("redis", f"{mask_url(settings.redis_url)} answers"), check_redis_auth(settings)]
    try:
        config = {k: v for name in ("appendonly", "appendfsync", "maxmemory-policy")
                  for k, v in redis.config_get(name).items()}
    except ResponseError as exc:
        checks.append(Check(name="redis persistence", status="skipped",
                            detail=f"CONFIG GET is not allowed here ({exc}); make sure AOF and noeviction are on"))
        return checks, redis
    wrong = []
    if config.get("appendonly") != "yes":
        wrong.append(f"appendonly is {config.get('appendonly')}")
    if config.get("maxmemory-policy") != "noeviction":
        wrong.append(f"maxmemory-policy is {config.get('maxmemory-policy')}")
    if wrong:
        checks.append(_problem("redis persistence", "; ".join(wrong) + " (jobs can be lost)",
                               "Run Redis with `appendonly yes`, `appendfsync everysec`, "
                               "`maxmemory-policy noeviction` (see deploy/docker-compose.yml)"))
    else:
        checks.append(_ok("redis persistence", f"appendonly yes, appendfsync {config.get('appendfsync')}, noeviction"))
    return checks, redis


def check_redis_auth(settings: Settings) -> Check:
    """Whoever reaches Redis can read every job and queue work for the workers, so it must ask for
    a password (an ACL user for fmbot, or requirepass); a URL without one answered, so it does not."""
    url = urlsplit(settings.redis_url)
    if url.password:
        return _ok("redis auth", f"fmbot signs in{f' as {url.username}' if url.username else ''}")
    return _problem("redis auth", "Redis answers without a password: anyone who reaches it can read jobs and queue work",
                    "Give Redis an ACL user for fmbot (or requirepass) and put it in REDIS_URL, "
                    "redis://fmbot:PASSWORD@host:6379/0 (rediss:// for TLS); deploy/ shows how")


def check_workers(redis: Redis | None) -> Check:
    if redis is None:
        return Check(name="workers", status="skipped", detail="needs Redis")
    from rq import Worker

    from workers.queues import QUEUE_NAME, job_queue

    alive = Worker.all(queue=job_queue(redis))
    if not alive:
        return _problem("workers", f"no worker listens on queue {QUEUE_NAME}; jobs will wait",
                        "Start one with `fmbot worker` (compose: `docker compose up -d --scale worker=2`)")
    return _ok("workers", f"{len(alive)} alive: " + ", ".join(sorted(w.name for w in alive))[:200])


def check_local_platform(settings: Settings) -> list[Check]:
    folder = Path(settings.fmbot_models_dir)
    checks = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
        models = sum(1 for p in folder.iterdir() if p.is_dir())
        checks.append(_ok("models folder", f"{folder.resolve()} is writable ({models} models)"))
    except OSError as exc:
        checks.append(_problem("models folder", f"{folder}: {exc.strerror or exc}",
                               "Point FMBOT_MODELS_DIR at a writable folder (a volume shared by bot and workers)"))
    try:
        import torch
    except ImportError:
        checks.append(_problem("torch", "PyTorch is not installed",
                               "Install the local extra: pip install 'fmbot[local]' (image: --build-arg WITH_LOCAL=1)"))
        return checks
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    checks.append(_ok("torch", f"torch {torch.__version__} on {device}"))
    return checks


def _within(seconds: float, work: Callable[[], str]) -> str:
    """Azure SDK calls retry for minutes on a bad network; give up after `seconds`. A daemon thread,
    so a call still hanging does not hold the process open at exit."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def check_azureml(settings: Settings) -> list[Check]:
    """The credential, workspace, registry, every registry component fmbot submits, quota and VM sizes
    (platforms/azureml/doctor.py), each within AZURE_TIMEOUT_SECONDS; a refusal names the missing role."""
    missing = [name for name in ("azure_subscription_id", "azure_resource_group", "azureml_workspace")
               if not getattr(settings, name)]
    if missing:
        return [_problem("azure ml settings", f"{', '.join(m.upper() for m in missing)} not set",
                         "Set the workspace's subscription, resource group and name")]
    from platforms.azureml import AzureMLPlatform
    from platforms.azureml import doctor as azure_doctor

    platform = AzureMLPlatform.from_settings(
        subscription_id=settings.azure_subscription_id, resource_group=settings.azure_resource_group,
        workspace=settings.azureml_workspace, registry=settings.azureml_registry, data_dir=settings.fmbot_data_dir)
    steps = azure_doctor.run(platform.clients)
    checks = []
    deadline = time.monotonic() + AZURE_TIMEOUT_SECONDS * 4
    while True:
        try:
            name, ok, detail, fix = _within(max(deadline - time.monotonic(), 1), lambda: next(steps))
        except StopIteration:
            break
        except TimeoutError as exc:
            checks.append(_problem("azure ml", str(exc), "Check the network path to Azure (proxy, firewall)"))
            break
        checks.append(_ok(name, detail) if ok else _problem(name, detail, fix))
    return checks


def run_checks(settings: Settings, *, azure_only: bool = False) -> list[Check]:
    if azure_only:
        return check_azureml(settings)
    checks = check_slack(settings)
    redis_checks, redis = check_redis(settings)
    checks += redis_checks
    checks.append(check_workers(redis))
    if settings.fmbot_platform == "local":
        checks += check_local_platform(settings)
    else:
        checks += check_azureml(settings)
    return checks


def table(checks: list[Check]) -> str:
    marks = {"ok": "ok", "problem": "PROBLEM", "skipped": "skipped"}
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{marks[check.status]:<8} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':<8} {'':<{width}}  fix: {check.fix}")
    problems = sum(c.status == "problem" for c in checks)
    if problems:
        lines += ["", f"{problems} problem(s) found."]
    return "\n".join(lines)
