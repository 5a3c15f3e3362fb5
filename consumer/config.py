"""Configuration: the whole `Settings` (sections: consumer/settings.py), how it is loaded, redaction.

The settings are a pydantic-settings `BaseSettings`; consumer/config_sources.py reads them, highest
precedence first, from environment variables (`ACS_SMS_CONSUMER_` + the key, `__` between nesting
levels, e.g. `ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING` or
`ACS_SMS_CONSUMER_PIPELINE__LABELS__USAGE_TYPES=100`; lists as YAML: `[1, 5, 10]`) and, for the two
connection strings, files named by `..._FILE` variables; then a secrets directory (a file per key,
named like its variable); then the YAML file; then the defaults below. So Kubernetes can inject
secrets (as variables or mounted files) and tweaks without editing the file.

`config.example.yaml` at the top of the repository documents every key; a test keeps it in step
with these models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import (
    BaseModel,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# ConfigError, raised by the sources, is re-exported (the `as` form) for callers of the loading functions.
from consumer.config_sources import ENV_NESTING, ENV_PREFIX, ConfigError as ConfigError, Loaded, load
from consumer.settings import (
    Buckets as Buckets,
    CheckpointSettings as CheckpointSettings,
    CheckpointStoreSettings as CheckpointStoreSettings,
    ContainerName as ContainerName,
    DeadLetterSettings as DeadLetterSettings,
    EventHubSettings as EventHubSettings,
    HttpSettings as HttpSettings,
    LabelLimits as LabelLimits,
    LoggingSettings as LoggingSettings,
    NetworkSettings as NetworkSettings,
    NonNegativeFloat as NonNegativeFloat,
    NonNegativeInt as NonNegativeInt,
    NoSecretsInPlainFields as NoSecretsInPlainFields,
    PipelineSettings as PipelineSettings,
    PositiveFloat as PositiveFloat,
    PositiveInt as PositiveInt,
    ProxySettings as ProxySettings,
    parse_timestamp as parse_timestamp,
)


class Settings(NoSecretsInPlainFields, BaseSettings):
    """The whole configuration of `acs-sms-consumer run`."""

    # validate_default=False as for the sections (pydantic's default; BaseSettings' is True).
    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=False, case_sensitive=False,
                                      env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTING)

    eventhub: EventHubSettings
    checkpoint_store: CheckpointStoreSettings
    checkpoint: CheckpointSettings = CheckpointSettings()
    deadletter: DeadLetterSettings = DeadLetterSettings()
    http: HttpSettings = HttpSettings()
    network: NetworkSettings = NetworkSettings()
    logging: LoggingSettings = LoggingSettings()
    pipeline: PipelineSettings = PipelineSettings()
    shutdown_timeout_seconds: PositiveFloat = 20
    shutdown_final_scrape_wait_seconds: NonNegativeFloat = 35
    readiness_checkpoint_store_max_age_seconds: PositiveFloat = 60
    readiness_eventhub_max_age_seconds: PositiveFloat = 60
    readiness_partition_stalled_max_seconds: PositiveFloat = 120

    @field_validator("readiness_eventhub_max_age_seconds")
    @classmethod
    def _eventhub_answers_often_enough(cls, value: float) -> float:
        # An idle replica's only answers are the probe's, every 10 s (a failing call takes ~12 s more):
        # a shorter age would turn it unready between two answers.
        if value < 30:
            raise ValueError("must be at least 30 s: the Event Hubs probe answers every 10 s, a failing "
                             "call takes up to ~15 s")
        return value

    @model_validator(mode="after")
    def _proxy_needs_websocket(self) -> Settings:
        if self.network.proxy.enabled and self.eventhub.transport != "websocket":
            raise ValueError("network.proxy needs eventhub.transport: websocket (AMQP on port 5671 cannot go "
                             "through an HTTP proxy; AMQP over WebSocket on 443 can)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """`Settings(...)` and `Settings.model_validate(...)` take only the values given: the file,
        the environment and the secret files are read by `load_config`, which passes its sources."""
        return (init_settings,)


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None,
                secrets_dir: str | Path | None = None) -> Loaded[Settings]:
    """The settings from the file, the environment and secret files (consumer/config_sources.py), and
    where each value came from. Raises ConfigError naming the file, the key and the variable."""
    return load(Settings, path, environ, secrets_dir)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None,
                  secrets_dir: str | Path | None = None) -> Settings:
    """Read the YAML file (if any), the environment and secret files, validate. Raises ConfigError."""
    return load_config(path, environ, secrets_dir).settings


def redact_url(url: str) -> str:
    """`url` without what may be a credential: its query (a SAS token: `?sv=...&sig=...`) and its
    user information become `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    base, query_sep, _ = rest.partition("?")
    authority, slash, path = base.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    redacted_url = f"{scheme}{sep}{authority}{slash}{path}"
    return redacted_url + "?***" if query_sep else redacted_url


def redacted(settings: Settings) -> dict[str, object]:
    """The effective configuration as plain data with every secret replaced by `***` (connection
    strings whole, URLs their query and user information: see `redact_url`; also a URL without a
    scheme, which the storage SDK takes as https)."""
    return _redacted_model(settings)


def _redacted_model(model: BaseModel) -> dict[str, object]:
    return {name: _redacted_value(getattr(model, name)) for name in type(model).model_fields}


def _redacted_value(value: object) -> object:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, str) and ("://" in value or "?" in value or "@" in value):
        return redact_url(value)
    if isinstance(value, BaseModel):
        return _redacted_model(value)
    if isinstance(value, list):
        return [_redacted_value(v) for v in value]
    return value
