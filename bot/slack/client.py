"""The one Slack Web API client of a process: configured base URL and retry handlers.

Rate limits (429 + Retry-After), Slack's 5xx answers and dropped connections are retried by
slack_sdk's own handlers, so callers see an error only when Slack stays unavailable.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.settings import Settings


# slack_sdk logs every request body at DEBUG, and bodies carry endpoint keys shown to their owner
# and users' data; this logger never goes below INFO, even with FMBOT_LOG_LEVEL=DEBUG.
API_LOG = logging.getLogger("bot.slack.web_api")
API_LOG.setLevel(logging.INFO)


def web_client(settings: Settings) -> WebClient:
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return WebClient(
        token=settings.secret(settings.slack_bot_token),
        base_url=base_url,
        timeout=10,
        logger=API_LOG,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=3),
        ],
    )
