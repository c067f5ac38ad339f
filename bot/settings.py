"""All of fmbot's configuration: one settings model, read from the environment and `.env`.

Each field's name is its environment variable (case-insensitive), so `deploy/.env.example`,
the README's table and `fmbot config` are all generated from or checked against this class.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from platforms.datasets import RowPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = Field(None, description="Bot token (xoxb-...) used for every Web API call.")
    slack_signing_secret: SecretStr | None = Field(
        None, description="Signing secret that verifies every HTTP request from Slack."
    )
    slack_app_token: SecretStr | None = Field(None, description="App-level token (xapp-...) for Socket Mode.")
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (GovSlack hosts, or a stand-in in tests)."
    )
    slack_file_hosts: str = Field(
        "files.slack.com,files-edu.slack.com,files.slack-gov.com",
        description="Hosts the bot token may be sent to when downloading uploads (plus the API host).",
    )
    teams_app_id: str | None = Field(
        None, description="Teams: the Azure Bot's Microsoft App ID (client id of its Entra app registration)."
    )
    teams_tenant_id: str | None = Field(None, description="Teams: Entra tenant id of a single-tenant bot.")
    teams_auth_type: Literal["client_secret", "user_managed_identity", "system_managed_identity"] = Field(
        "client_secret", description="Teams: how the bot gets its tokens: the app's secret, or a managed identity."
    )
    teams_app_secret: SecretStr | None = Field(
        None, description="Teams: client secret of the app registration (not used with a managed identity)."
    )
    teams_openid_metadata_url: str = Field(
        "https://login.botframework.com/v1/.well-known/openidconfiguration",
        description="Teams: OpenID metadata that publishes the keys signing the Bot Connector's requests.",
    )
    teams_graph_url: str = Field(
        "https://graph.microsoft.com/v1.0",
        description="Teams: Microsoft Graph, asked for users' Entra groups when the access policy names any.",
    )
    teams_file_hosts: str = Field(
        "sharepoint.com",
        description="Teams: hosts (and their subdomains) files shared in a chat may be downloaded from, and a "
        "file the bot sends (file consent) uploaded to.",
    )
    redis_url: str = Field("redis://localhost:6379/0", description="Redis holding the queue and the job ledger.")

    fmbot_platform: Literal["local", "azureml"] = Field("local", description="Where models live and jobs run.")
    fmbot_models_dir: Path = Field(Path("var/models"), description="Local platform: folder of Hugging Face models.")
    fmbot_seed_models: bool = Field(True, description="Local platform: copy MiniLM-L6 into an empty catalog.")
    fmbot_data_dir: Path = Field(Path("var/data"), description="Where uploaded datasets are kept for the workers.")
    fmbot_max_upload_mb: int = Field(100, ge=1, description="Largest dataset accepted, in MB.")
    fmbot_max_bad_rows_percent: float = Field(
        5.0, ge=0, le=100,
        description="Bad rows a user may skip (--skip-bad-rows, the form's Skip button), in percent of a file's rows; "
                    "above it the file is refused.",
    )
    fmbot_progress_interval: float = Field(
        10.0, ge=0, description="Seconds between progress updates posted to Slack."
    )
    fmbot_job_timeout: int = Field(24 * 3600, ge=60, description="Seconds a job may run before it is stopped.")
    fmbot_job_retries: int = Field(1, ge=0, le=5, description="Retries for a job whose worker died.")
    fmbot_log_level: str = Field("INFO", description="Log level of bot and workers.")
    fmbot_policy: Path | None = Field(
        None, description="YAML access policy: who may fine-tune, deploy, import, cancel others' jobs (handlers/policy.py)."
    )
    fmbot_http_threads: int = Field(
        4, ge=1, le=64,
        description="Threads answering Slack's HTTP requests. Listeners only ack; slow work runs after the ack, "
                    "so more threads add GIL contention, not capacity.",
    )
    fmbot_internal_port: int = Field(
        9102, ge=0, le=65535,
        description="Port of /readyz and /metrics for probes and Prometheus, never the public Slack port "
                    "(/healthz is on both); keep it off the Ingress.",
    )
    fmbot_poll_interval: float = Field(
        60.0, ge=0, description="Seconds between checks on a remote (Azure ML) job; no worker is held meanwhile."
    )
    fmbot_approval_gpu_hours: float = Field(
        0.0, ge=0,
        description="Work estimated above this many GPU-hours (GPUs × instances × hours) waits for an approver's click (0: never).",
    )
    fmbot_approval_usd: float = Field(
        0.0, ge=0,
        description="Work estimated above this many US dollars (the high end of its estimate) waits for an approver's click (0: never).",
    )
    fmbot_prices: Path | None = Field(
        None, description="YAML price table overriding or adding to the shipped one (platforms/prices.yaml): USD per VM size hour and per 1K serverless tokens.",
    )
    fmbot_approval_expiry_hours: float = Field(
        24.0, gt=0, description="Hours a job waits for approval before it is rejected, with a notice in its thread.",
    )
    fmbot_approval_reminder_hours: float = Field(
        2.0, ge=0, description="Hours before an approval expires that approvers are reminded, once (0: no reminder).",
    )
    fmbot_ttl_warning_hours: float = Field(
        1.0, ge=0, description="Hours before an endpoint's time to live ends that its owner is asked to keep or delete it.",
    )
    fmbot_ttl_extension_hours: float = Field(
        8.0, gt=0, description="Hours the \"Keep\" button adds to an endpoint's time to live.",
    )
    fmbot_idle_hours: float = Field(
        4.0, gt=0, description="Hours without a scoring request after which an endpoint's owner is told what it costs, with Delete.",
    )
    fmbot_digest_interval_hours: float = Field(
        24.0, gt=0, description="Hours between the cost digests of the channels that opted in (`costs digest on`).",
    )
    fmbot_admins: str = Field(
        "", description="Comma-separated Slack user ids and Teams (Entra object) ids who may do everything and grant access."
    )
    fmbot_ledger_retention_days: float = Field(
        90.0, gt=0, description="Days a finished job's ledger record is kept; workers delete older ones (and their outbox).",
    )
    fmbot_upload_retention_hours: float = Field(
        24.0, gt=0, description="Hours a dataset uploaded from chat is kept when no job reads it (one that a job reads "
                                "is deleted when the job ends); also how long a stopped endpoint's log is kept.",
    )
    fmbot_try_service: bool = Field(
        True, description="Run a warm try service beside each `fmbot worker`: /fm try and `fmbot try` are answered "
                          "there, with the models kept loaded, never in the bot.",
    )
    fmbot_warm_models: int = Field(2, ge=1, le=16, description="Models each try service keeps loaded.")
    fmbot_slack_answerer: bool = Field(
        True, description="Answer /fm commands in a process `fmbot serve` forks beside the bot, so that no ack "
                          "waits while another command's answer is rendered; off, the bot answers on its own threads.",
    )

    azure_subscription_id: str | None = Field(None, description="Azure ML: subscription id.")
    azure_resource_group: str | None = Field(None, description="Azure ML: resource group of the workspace.")
    azureml_workspace: str | None = Field(None, description="Azure ML: workspace name.")
    azureml_registry: str = Field("azureml", description="Azure ML: registry that serves the model catalog.")

    def replace(self, **changes: object) -> Settings:
        """A copy with `changes` applied and validated (init arguments outrank the environment)."""
        return Settings(_env_file=None, **{**self.model_dump(), **changes})

    @property
    def max_upload_bytes(self) -> int:
        return self.fmbot_max_upload_mb * 1024 * 1024

    def row_policy(self, skip: bool) -> RowPolicy:
        """Whether bad rows are skipped, under this deployment's limit (imported here: the settings load
        in every process, the dataset readers only where data is read)."""
        from platforms.datasets import RowPolicy

        return RowPolicy(skip=skip, max_fraction=self.fmbot_max_bad_rows_percent / 100)

    @staticmethod
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None
