"""Configuration: pydantic models of the YAML file, environment overrides, redaction for printing.

Precedence, highest first: environment variables, then the YAML file, then the defaults below.
Every key can be set from the environment with the prefix `ACS_SMS_CONSUMER_` and `__` between
nesting levels, e.g. `ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING` or
`ACS_SMS_CONSUMER_PIPELINE__LABELS__USAGE_TYPES=100`; values are parsed as YAML scalars/lists
(`[1, 5, 10]`), so Kubernetes can inject secrets and tweaks without editing the file.

`config.example.yaml` at the top of the repository documents every key; a test keeps it in step
with these models.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from consumer.connection_strings import check_eventhub, check_namespace, check_storage

ENV_PREFIX = "ACS_SMS_CONSUMER_"
ENV_NESTING = "__"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]

_CONTAINER_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _check_container_name(value: str) -> str:
    """Azure's rule for blob container names, checked here rather than by the first request to storage
    (which would fail only after start-up, with `OutOfRangeInput` or `InvalidResourceName`)."""
    if not 3 <= len(value) <= 63 or not _CONTAINER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a blob container name: 3 to 63 lowercase letters, digits and "
                         "hyphens, starting and ending with a letter or digit, no two hyphens in a row")
    return value


ContainerName = Annotated[str, AfterValidator(_check_container_name)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_buckets(value: list[float]) -> list[float]:
    if not value:
        raise ValueError("needs at least one bucket bound")
    if any(b <= 0 for b in value):
        raise ValueError("bucket bounds must be positive")
    if list(value) != sorted(set(value)):
        raise ValueError("bucket bounds must be strictly increasing")
    return list(value)


class Buckets(_Section):
    """Histogram bucket upper bounds (the `+Inf` bucket is implicit)."""

    api_duration_seconds: list[float] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    delivery_latency_seconds: list[float] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600]
    age_seconds: list[float] = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600]
    delivery_attempts: list[float] = [1, 2, 3, 5, 10]

    @field_validator("*")
    @classmethod
    def _check(cls, value: list[float]) -> list[float]:
        return _check_buckets(value)


class LabelLimits(_Section):
    """How many distinct values an open-ended label admits before new ones become `other`."""

    result_signatures: PositiveInt = 50
    usage_types: PositiveInt = 50
    unit_types: PositiveInt = 50
    categories: PositiveInt = 20
    #: Total series (label combinations) of one metric family; past it, new combinations fold into the
    #: family's `other` series (counted in acs_consumer_series_folded_total).
    series_per_family: PositiveInt = 2000


class PipelineSettings(_Section):
    """The pure core: decoding limits, correlation and duplicate windows, label bounds, buckets."""

    max_body_bytes: PositiveInt = 1_048_576
    offload_min_bytes: PositiveInt = 65_536
    correlation_max_entries: PositiveInt = 200_000
    correlation_max_age_seconds: PositiveFloat = 7200
    duplicates_max_entries: PositiveInt = 200_000
    duplicates_max_age_seconds: PositiveFloat = 7200
    #: A delivery report whose send is not waiting here takes its send time from its MessageId.
    latency_from_message_id: bool = True
    labels: LabelLimits = LabelLimits()
    buckets: Buckets = Buckets()


class EventHubSettings(_Section):
    connection_string: SecretStr | None = None
    fully_qualified_namespace: str | None = None
    name: str | None = None
    consumer_group: str = "$Default"
    max_batch_size: PositiveInt = 300
    max_wait_time_seconds: PositiveFloat = 5
    prefetch: PositiveInt = 600
    initial_position: str = "latest"
    load_balancing_strategy: Literal["greedy", "balanced"] = "greedy"
    load_balancing_interval_seconds: PositiveFloat = 10
    partition_ownership_expiration_interval_seconds: PositiveFloat = 60

    @field_validator("initial_position")
    @classmethod
    def _position(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("latest", "earliest"):
            return value.lower()
        try:
            parse_timestamp(value)
        except ValueError:
            raise ValueError("must be 'latest', 'earliest' or an ISO 8601 timestamp such as 2026-01-31T00:00:00Z") from None
        return value

    @model_validator(mode="after")
    def _auth(self) -> EventHubSettings:
        if self.connection_string is None and not self.fully_qualified_namespace:
            raise ValueError("set eventhub.connection_string, or eventhub.fully_qualified_namespace for Azure AD auth")
        if self.connection_string is not None and self.fully_qualified_namespace:
            raise ValueError("set only one of eventhub.connection_string and eventhub.fully_qualified_namespace")
        if self.connection_string is not None:
            parts = check_eventhub(self.connection_string.get_secret_value(), self.name)
            if not self.name and not parts.get("entitypath"):
                raise ValueError("set eventhub.name, or EntityPath in eventhub.connection_string")
        else:
            check_namespace(self.fully_qualified_namespace or "")
            if not self.name:
                raise ValueError("eventhub.name is required with eventhub.fully_qualified_namespace")
        if self.partition_ownership_expiration_interval_seconds <= self.load_balancing_interval_seconds:
            raise ValueError(
                "eventhub.partition_ownership_expiration_interval_seconds must be longer than "
                "eventhub.load_balancing_interval_seconds"
            )
        return self

    def starting_position(self) -> str | datetime:
        """The SDK's `starting_position` for partitions without a checkpoint."""
        if self.initial_position == "latest":
            return "@latest"
        if self.initial_position == "earliest":
            return "-1"
        return parse_timestamp(self.initial_position)


class CheckpointStoreSettings(_Section):
    connection_string: SecretStr | None = None
    account_url: str | None = None
    container: ContainerName = "eventhub-checkpoints"

    @model_validator(mode="after")
    def _auth(self) -> CheckpointStoreSettings:
        if (self.connection_string is None) == (not self.account_url):
            raise ValueError(
                "set exactly one of checkpoint_store.connection_string and checkpoint_store.account_url"
            )
        if self.connection_string is not None:
            check_storage(self.connection_string.get_secret_value())
        return self


class CheckpointSettings(_Section):
    interval_seconds: PositiveFloat = 10
    every_events: PositiveInt = 1000
    scrape_aligned: bool = True
    no_scrape_seconds: PositiveFloat = 300


class DeadLetterSettings(_Section):
    enabled: bool = True
    container: ContainerName = "acs-sms-deadletter"
    max_body_bytes: PositiveInt = 1_048_576
    max_blobs_per_minute: PositiveInt = 60
    max_queued_bytes: PositiveInt = 16 * 1024 * 1024


class HttpSettings(_Section):
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    progress_interval_seconds: PositiveFloat = 30

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(_Section):
    """The whole configuration of `acs-sms-consumer run`."""

    eventhub: EventHubSettings
    checkpoint_store: CheckpointStoreSettings
    checkpoint: CheckpointSettings = CheckpointSettings()
    deadletter: DeadLetterSettings = DeadLetterSettings()
    http: HttpSettings = HttpSettings()
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


class ConfigError(Exception):
    """The configuration is unusable; the message names the file, the key and the problem."""


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip())
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def connection_string_parts(connection_string: str) -> dict[str, str]:
    """`Endpoint=sb://...;EntityPath=hub` → {"endpoint": "sb://...", "entitypath": "hub"} (keys lower-cased)."""
    parts: dict[str, str] = {}
    for item in connection_string.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            parts[key.strip().lower()] = value.strip()
    return parts


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), apply environment overrides, validate. Raises ConfigError."""
    environ = os.environ if environ is None else environ
    source = str(path) if path is not None else "(no file)"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the configuration file: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML{_yaml_problem(exc, text)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of sections, not a {type(loaded).__name__}")
        data = loaded
    overridden = _apply_environment(data, environ)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, overridden)) from None


# A quoted part of a PyYAML problem (`found character '%' that cannot start any token`, an alias or a
# tag name) is text of the file: it is left out.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what a YAML error is, never the text of the line: PyYAML's own message quotes the
    line (with a caret under the column), and a configuration line may hold a secret."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        where = f" at line {before.count(chr(10)) + 1}, column {exc.position - before.rfind(chr(10))}"
    else:
        where = ""
    if isinstance(exc, yaml.reader.ReaderError):
        problem = "a character that YAML does not allow (control character or invalid encoding)"
    else:
        problem = _QUOTED.sub("'...'", getattr(exc, "problem", None) or "syntax error")
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            problem += (f" ({_QUOTED.sub(repr('...'), context)} that starts at line {context_mark.line + 1}, "
                        f"column {context_mark.column + 1})")
    return f"{where}: {problem} (the line is not shown: it may hold a secret)"


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> set[str]:
    """Merge `ACS_SMS_CONSUMER_A__B=value` into data["a"]["b"]; returns the dotted keys it set."""
    overridden: set[str] = set()
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or not raw.strip():
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split(ENV_NESTING)]
        if not all(path):
            continue
        target = data
        for part in path[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[path[-1]] = _env_value(raw)
        overridden.add(".".join(path))
    return overridden


def _env_value(raw: str) -> Any:
    # Only lists (`[1, 5, 10]`) are parsed as YAML. Scalars stay strings, which pydantic converts
    # where the key is a number or a boolean, so secrets and names that look like numbers (a hub
    # or consumer group named `2024`) stay as written instead of failing as "not a valid string".
    if not raw.lstrip().startswith("["):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, list) else raw


def _describe(exc: ValidationError, source: str, overridden: set[str]) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''}):"]
    for error in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = "is not a known key (check the spelling against config.example.yaml)"
        elif error["type"] == "missing":
            message = "is required"
        else:
            message = error["msg"].removeprefix("Value error, ")
        origin = f" (from environment variable {ENV_PREFIX}{key.upper().replace('.', ENV_NESTING)})" if key in overridden else ""
        lines.append(f"  {key}: {message}{origin}")
    return "\n".join(lines)


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


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with every secret replaced by `***` (connection
    strings whole, URLs their query and user information: see `redact_url`)."""
    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "***"
        if isinstance(value, str) and "://" in value:
            return redact_url(value)
        if isinstance(value, BaseModel):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(settings)
