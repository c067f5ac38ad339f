"""Build the process's Runtime (Redis, ledger, queue, platform, notifier) from the settings."""

from __future__ import annotations

import importlib.util

from redis import Redis

from bot.settings import Settings
from platforms.base import Platform
from platforms.prices import load_prices
from workers import compare
from workers.costs import CostConfig
from workers.ledger import Ledger
from workers.notifier import Notifier, NullNotifier, SurfaceNotifier
from workers.queues import job_queue
from workers.runtime import Runtime


def build_platform(settings: Settings) -> Platform:
    if settings.fmbot_platform == "azureml":
        from platforms.azureml import AzureMLPlatform

        return AzureMLPlatform.from_settings(
            subscription_id=settings.azure_subscription_id,
            resource_group=settings.azure_resource_group,
            workspace=settings.azureml_workspace,
            registry=settings.azureml_registry,
            data_dir=settings.fmbot_data_dir,
            redis_url=settings.redis_url,
        )
    from platforms.local import LocalPlatform

    return LocalPlatform(settings.fmbot_models_dir, max_upload_bytes=settings.max_upload_bytes,
                         seed=settings.fmbot_seed_models, redis=Redis.from_url(settings.redis_url),
                         datasets_dir=settings.fmbot_data_dir / "datasets", warm_models=settings.fmbot_warm_models)


def teams_installed() -> bool:
    """Teams is an optional extra (`fmbot[teams]`): a Slack-only install posts to Slack alone."""
    try:
        return importlib.util.find_spec("microsoft_agents.hosting.aiohttp") is not None
    except ModuleNotFoundError:
        return False


def build_runtime(settings: Settings, *, slack: bool | None = None) -> Runtime:
    """`slack=None` posts to Slack when a bot token is configured."""
    redis = Redis.from_url(settings.redis_url)
    ledger = Ledger(redis)
    use_slack = settings.slack_bot_token is not None if slack is None else slack
    notifiers: dict[str, Notifier] = {}
    if use_slack:
        from bot.observability import count_retries
        from bot.slack.client import web_client
        from bot.slack.home import user_home
        from bot.slack.notifier import SlackNotifier
        from bot.slack.views.compare import CompareRenderer

        notifiers["slack"] = SlackNotifier(count_retries(web_client(settings), redis), CompareRenderer(), ledger,
                                           home=lambda user: user_home(runtime, user))
    if settings.teams_app_id and teams_installed():
        from bot.teams.notifier import TeamsNotifier

        notifiers["teams"] = TeamsNotifier(settings, ledger, redis)
    notifier = SurfaceNotifier(notifiers) if len(notifiers) > 1 else next(iter(notifiers.values()), NullNotifier())
    runtime = Runtime(
        redis=redis,
        ledger=ledger,
        queue=job_queue(redis),
        notifier=notifier,
        platform_factory=lambda: build_platform(settings),
        progress_interval=settings.fmbot_progress_interval,
        job_timeout=settings.fmbot_job_timeout,
        job_retries=settings.fmbot_job_retries,
        approval_gpu_hours=settings.fmbot_approval_gpu_hours,
        ledger_retention_days=settings.fmbot_ledger_retention_days,
        upload_retention_hours=settings.fmbot_upload_retention_hours,
        observers=(compare.after_change,),
        poll_interval=settings.fmbot_poll_interval,
        costs=cost_config(settings),
    )
    return runtime


def cost_config(settings: Settings) -> CostConfig:
    return CostConfig(
        prices=load_prices(settings.fmbot_prices),
        approval_usd=settings.fmbot_approval_usd,
        approval_expiry_hours=settings.fmbot_approval_expiry_hours,
        approval_reminder_hours=settings.fmbot_approval_reminder_hours,
        ttl_warning_hours=settings.fmbot_ttl_warning_hours,
        ttl_extension_hours=settings.fmbot_ttl_extension_hours,
        idle_hours=settings.fmbot_idle_hours,
        digest_interval_hours=settings.fmbot_digest_interval_hours,
    )
