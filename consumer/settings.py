"""The settings models: every section of the configuration, its validation and defaults.

Plain pydantic models with no loading: the pure core (consumer/pipeline.py, consumer/metrics.py) takes
its settings from here without importing the loader (pydantic-settings, PyYAML). consumer/config.py
assembles the sections into `Settings` and reads them from the file, the environment and secret files.
"""

from __future__ import annotations

import re
import ssl
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from consumer.connection_strings import (
    check_account_url,
    check_eventhub,
    check_namespace,
    check_storage,
    is_local_eventhub,
    secret_kind,
)
from consumer.labels import sender_digits

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]

_CONTAINER_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _check_container_name(value: str) -> str:
    """Azure's rule for blob container names, checked here rather than by the first request to storage
    (which would fail only after start-up, with `OutOfRangeInput` or `InvalidResourceName`)."""
    if not 3 <= len(value) <= 63 or not _CONTAINER_NAME.fullmatch(value):
        raise ValueError("is not a blob container name: 3 to 63 lowercase letters, digits and "
                         "hyphens, starting and ending with a letter or digit, no two hyphens in a row")
    return value


ContainerName = Annotated[str, AfterValidator(_check_container_name)]


def _is_secret_field(model: type[BaseModel], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


class NoSecretsInPlainFields(BaseModel):
    """Every model of the settings, and so every field other branches add, refuses a credential in a
    field that is not a secret (`SecretStr`): such fields are printed by `check-config` and logged at
    start-up. The message names the key (pydantic's location) and what the value looks like, never
    the value."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_secret(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None or _is_secret_field(cls, info.field_name):
            return value
        for item in value if isinstance(value, (list, tuple)) else (value,):
            kind = secret_kind(item) if isinstance(item, str) else None
            if kind is not None:
                raise ValueError(
                    f"looks like {kind} (the value is not shown): a secret does not belong in this key, which "
                    "is printed by check-config and logged at start-up; put connection strings in "
                    "eventhub.connection_string or checkpoint_store.connection_string (from the environment or a "
                    "secret file, see docs/configuration.md), or use Azure AD (fully_qualified_namespace, account_url)")
        return value


class _Section(NoSecretsInPlainFields):
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
    #: `resource` (the ACS resource name from `resourceId`): the names listed here are always their own
    #: value (on every replica, whatever the arrival order); besides them the first
    #: `resources_first_seen` distinct names that look like names; every other one is `other`.
    resources: list[str] = []
    resources_first_seen: NonNegativeInt = 10
    #: `sender` of acs_sms_sender_operations_total: the organisation's own sender numbers (or sender IDs);
    #: any other `PhoneNumber` is `other`. Empty (the default): the family stays empty and no phone
    #: number is ever read for a label.
    senders: list[str] = []

    @field_validator("resources")
    @classmethod
    def _check_resources(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        for name in names:
            if not name or len(name) > 64 or not name.isprintable():
                raise ValueError("each entry must be an ACS resource name (the last segment of its resourceId), "
                                 "1 to 64 printable characters")
        return names

    @field_validator("senders")
    @classmethod
    def _check_senders(cls, value: list[str]) -> list[str]:
        for sender in value:
            kept = sender_digits(sender)
            if not (3 <= len(kept) <= 20 and (kept.lstrip("+").isdigit() or kept.isalnum()) and kept.isascii()):
                raise ValueError("each entry must be a sender number (E.164, e.g. +18445791704; spaces, -().' "
                                 "allowed) or an alphanumeric sender ID")
        return value
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
    #: How often both windows are swept of what is over age, also when no record arrives to do it.
    expire_interval_seconds: PositiveFloat = 30
    #: A delivery report whose send is not waiting here takes its send time from its MessageId.
    latency_from_message_id: bool = True
    labels: LabelLimits = LabelLimits()
    buckets: Buckets = Buckets()


def _check_endpoint_address(value: str | None) -> str | None:
    """`sb://host[:port]` (a bare `host[:port]` gets `sb://`): where the SDK connects instead of the
    namespace host. Nothing else: the SDK appends the WebSocket path itself, and would silently drop a
    user, a query or another path."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    address = value if "://" in value else f"sb://{value}"
    parsed = urlsplit(address)
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if (parsed.scheme.lower() != "sb" or not parsed.hostname or port == -1 or port == 0 or "@" in parsed.netloc
            or parsed.path.strip("/") or parsed.query or parsed.fragment):
        raise ValueError("must be sb://<host>[:<port>] (e.g. sb://eh-gateway.corp.example:8443): the address the "
                         "Event Hubs client connects to instead of the namespace host; no path, user or query")
    return address.rstrip("/")


EndpointAddress = Annotated[str | None, AfterValidator(_check_endpoint_address)]


class EventHubSettings(_Section):
    connection_string: SecretStr | None = None
    fully_qualified_namespace: str | None = None
    name: str | None = None
    #: `amqp`: AMQP over TLS, port 5671. `websocket`: AMQP over WebSocket (TLS), port 443; needed to go
    #: through an HTTP proxy (`network.proxy`) or where only 443 leaves the network.
    transport: Literal["amqp", "websocket"] = "amqp"
    #: Connect here instead of the namespace host (a gateway or relay in front of Event Hubs):
    #: `sb://host[:port]`; the port defaults to 443 (websocket) or 5671 (amqp). TLS checks the
    #: certificate against this host. A private endpoint needs none: its private DNS zone resolves the
    #: namespace's own name to it. See docs/networks.md.
    custom_endpoint_address: EndpointAddress = None
    consumer_group: str = "$Default"
    #: `$Default` is refused unless this says the operator wants it (see `_consumer_group`).
    allow_default_consumer_group: bool = False
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
            raise ValueError("must be 'latest', 'earliest' or an ISO 8601 timestamp such as "
                             "2026-01-31T00:00:00Z") from None
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
        self._consumer_group()
        return self

    def _consumer_group(self) -> None:
        """With a checkpoint store the SDK opens exclusive (epoch) receivers: on `$Default`, which other
        readers use without asking, they disconnect every other reader of the group. A local development
        endpoint (the demo's, the tests') has no other reader."""
        if (self.consumer_group.strip().lower() == "$default" and not self.allow_default_consumer_group
                and not is_local_eventhub(self.connection_string.get_secret_value() if self.connection_string else None,
                                          self.fully_qualified_namespace)):
            raise ValueError(
                "eventhub.consumer_group is $Default (also the default when none is given), refused: with a "
                "checkpoint store the Event Hubs SDK opens exclusive (epoch) receivers, which disconnect every "
                "other reader of $Default (a SIEM connector, another exporter, Stream Analytics). Create a consumer "
                "group for this service (portal: the Event Hub > Consumer groups; az eventhubs eventhub "
                "consumer-group create) and set eventhub.consumer_group to it, or set "
                "eventhub.allow_default_consumer_group: true if nothing else reads $Default")

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
        if self.account_url:
            check_account_url(self.account_url)
        return self


class CheckpointSettings(_Section):
    interval_seconds: PositiveFloat = 10
    every_events: PositiveInt = 1000
    scrape_aligned: bool = True
    #: Which `GET /metrics` are the scrapes checkpoints wait for: `prometheus`, those that announce a
    #: scrape timeout (`X-Prometheus-Scrape-Timeout-Seconds`, sent by Prometheus' scrape code and so by
    #: Prometheus, Azure Managed Prometheus' agent, Grafana Alloy, vmagent, the OpenTelemetry
    #: Collector's prometheus receiver), not a `curl`; `any`, every one (a scraper without that header).
    scrapers: Literal["prometheus", "any"] = "prometheus"
    no_scrape_seconds: PositiveFloat = 300


class DeadLetterSettings(_Section):
    enabled: bool = True
    container: ContainerName = "acs-sms-deadletter"
    max_body_bytes: PositiveInt = 1_048_576
    max_blobs_per_minute: PositiveInt = 60
    max_queued_bytes: PositiveInt = 16 * 1024 * 1024


_PROXY_HOST = re.compile(r"(?:http://)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])/?")


class ProxySettings(_Section):
    """An HTTP proxy (CONNECT tunnels) for Event Hubs and Blob storage. Unset `host`: no proxy."""

    #: `proxy.corp.example` or `http://proxy.corp.example` (an `http://` proxy; the tunnelled traffic
    #: stays TLS end to end, or is inspected with `network.ca_bundle`).
    host: str | None = None
    port: Annotated[int | None, Field(ge=1, le=65535)] = None
    username: str | None = None
    #: Secret: `ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD`, its `_FILE`, or the secrets directory.
    password: SecretStr | None = None

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        match = _PROXY_HOST.fullmatch(value.strip())
        if match is None:
            raise ValueError("must be the proxy's host name or address, optionally with http:// (e.g. "
                             "proxy.corp.example); the port, user and password have keys of their own "
                             "(network.proxy.port, .username, .password); https:// proxies are not supported")
        return match.group(1)

    @model_validator(mode="after")
    def _complete(self) -> ProxySettings:
        if self.host is None:
            if self.port is not None or self.username or self.password is not None:
                raise ValueError("network.proxy.port, .username and .password need network.proxy.host")
            return self
        if self.port is None:
            raise ValueError("network.proxy.port is required with network.proxy.host (e.g. 3128 or 8080)")
        if self.password is not None and not self.username:
            raise ValueError("network.proxy.password needs network.proxy.username")
        return self

    @property
    def enabled(self) -> bool:
        return self.host is not None


def _check_ca_bundle(value: str | None) -> str | None:
    """A readable PEM file of CA certificates (loaded here, so that check-config tells, not the first TLS
    handshake)."""
    if value is None or not value.strip():
        return None
    path = value.strip()
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (a PEM file of CA certificates)") from None
    except ssl.SSLError:  # an OSError too
        raise ValueError(f"{path}: holds no PEM CA certificate (-----BEGIN CERTIFICATE-----)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return path


class NetworkSettings(_Section):
    """How the consumer reaches Event Hubs and Blob storage: docs/networks.md."""

    proxy: ProxySettings = ProxySettings()
    #: PEM file of the CA certificates trusted for TLS to Event Hubs and Blob storage (both SDKs'
    #: `connection_verify`), e.g. a TLS-inspecting proxy's CA. It replaces the system's CAs for them.
    ca_bundle: Annotated[str | None, AfterValidator(_check_ca_bundle)] = None


class HttpSettings(_Section):
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464
    #: A request must reach the application within this time of the connection's opening or of its
    #: first bytes (consumer/http_limits.py); else the connection is closed.
    header_timeout_seconds: PositiveFloat = 10
    #: An idle connection (no request under way) is closed after this time.
    keepalive_timeout_seconds: PositiveFloat = 75
    #: A connection whose client does not read its response for this time is closed.
    send_timeout_seconds: PositiveFloat = 30
    #: Connections open at once, and from one address; more are closed unread.
    max_connections: PositiveInt = 64
    max_connections_per_client: PositiveInt = 16
    #: Requests for a `/metrics` format that arrive while its render is pending share it; with this > 0,
    #: so do those of this many seconds after it (bounds the CPU; answers up to that old).
    render_reuse_seconds: NonNegativeFloat = 0
    #: A file holding the bearer token `/metrics` then requires (re-read when it changes); unset, anyone
    #: who reaches the port reads the metrics (docs/security.md).
    bearer_token_path: str | None = None


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    progress_interval_seconds: PositiveFloat = 30

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip())
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
