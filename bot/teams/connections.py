"""The SDK's connection to Entra ID, from fmbot's settings: how the bot gets its own tokens.

`TEAMS_APP_ID` with `TEAMS_APP_SECRET` (and `TEAMS_TENANT_ID` for a single-tenant bot) uses the
app's secret; `TEAMS_AUTH_TYPE=user_managed_identity` or `system_managed_identity` uses the
managed identity of the host (App Service, Container Apps, AKS), with no secret stored anywhere.
Without an app id the connection is anonymous: only the Agents Playground talks to such a bot.
"""

from __future__ import annotations

from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import AgentAuthConfiguration, AuthTypes

from bot.settings import Settings
from handlers.errors import UserError

_AUTH_TYPES = {"client_secret": AuthTypes.client_secret, "user_managed_identity": AuthTypes.user_managed_identity,
               "system_managed_identity": AuthTypes.system_managed_identity}


def credentials_problem(settings: Settings) -> str | None:
    """Why the configured credentials cannot authenticate the bot, or None when they can."""
    if not settings.teams_app_id:
        return "TEAMS_APP_ID is not set"
    if settings.teams_auth_type == "client_secret" and settings.teams_app_secret is None:
        return "TEAMS_APP_SECRET is not set (or set TEAMS_AUTH_TYPE to a managed identity)"
    return None


def auth_configuration(settings: Settings) -> AgentAuthConfiguration:
    if credentials_problem(settings) is not None:
        return AgentAuthConfiguration(anonymous_allowed=True)
    return AgentAuthConfiguration(
        auth_type=_AUTH_TYPES[settings.teams_auth_type],
        client_id=settings.teams_app_id,
        tenant_id=settings.teams_tenant_id,
        client_secret=settings.secret(settings.teams_app_secret),
    )


def connection_manager(settings: Settings) -> MsalConnectionManager:
    try:
        return MsalConnectionManager(connections_configurations={"SERVICE_CONNECTION": auth_configuration(settings)})
    except ValueError as exc:
        raise UserError(f"the Teams credentials are incomplete: {exc}",
                        hint="See `Using fmbot in Teams` in the README") from None


def cloud_adapter(manager: MsalConnectionManager) -> CloudAdapter:
    return CloudAdapter(connection_manager=manager)
