"""A real Prometheus server beside the consumer, with the project's alert rules on a shorter clock.

Why: what users read is Prometheus, not one process's /metrics. The end-to-end tests and
`acs-sms-consumer demo --prometheus` start the real server (Debian's `prometheus` package, the one
`.ci/setup` installs for promtool) scraping local replicas, with a COPY of
deploy/prometheus/acs-sms-consumer.rules.yaml whose time constants are divided by `speedup`
(default 60: a minute of the real rules is a second here, so `for: 15m` over `[15m]` fires after
15 s of a 15 s window).

Two layers:
- pure: `parse_duration`, `format_duration`, `shorten_expr`, `shorten_rules`, `prometheus_config`.
  The rewrite is structural: the rule file is read with YAML, and in each expression only range
  selectors (`[15m]`, subqueries `[15m:1m]`) and `offset` durations change; string literals and
  comments are left alone. Anything it cannot rewrite (a bracket that is not a duration, an offset
  that is not one, a duration too short to divide) raises `RuleRewriteError` naming the rule.
  Thresholds (`> 300` seconds of latency, `> 900` seconds of staleness) are measured quantities, not
  windows, and stay as they are.
- shell: `PrometheusServer` writes prometheus.yml, starts `prometheus` on 127.0.0.1 with its own
  TSDB directory, waits until it is ready, answers queries over the HTTP API and stops it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import yaml

from acs_sms_devtools.scrape import free_port

__all__ = [
    "DEFAULT_SPEEDUP",
    "JOB",
    "PrometheusError",
    "PrometheusNotFound",
    "PrometheusServer",
    "RuleRewriteError",
    "find_prometheus",
    "format_duration",
    "parse_duration",
    "prometheus_config",
    "repository_rules",
    "shorten_expr",
    "shorten_rules",
    "write_shortened_rules",
]

#: A minute of the real rules is a second of the shortened ones.
DEFAULT_SPEEDUP: Final = 60.0
#: The job label the `up` alerts select (the Service's name in deploy/kubernetes).
JOB: Final = "acs-sms-consumer"

_INSTALL_HINT: Final = ("install Debian's 'prometheus' package (apt-get install prometheus; .ci/setup does it) "
                        "or a release from https://prometheus.io/download/ and put `prometheus` on PATH")


class PrometheusError(RuntimeError):
    """The server did not start, or an API call failed."""


class PrometheusNotFound(PrometheusError):
    """No `prometheus` executable on PATH."""


class RuleRewriteError(ValueError):
    """A rule whose time constants cannot be shortened safely."""


def find_prometheus() -> str:
    """The path of the `prometheus` server executable, or PrometheusNotFound with what to install."""
    path = shutil.which("prometheus")
    if path is None:
        raise PrometheusNotFound(f"the Prometheus server (`prometheus`) is not installed: {_INSTALL_HINT}")
    return path


def repository_rules() -> Path:
    """deploy/prometheus/acs-sms-consumer.rules.yaml of the checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "acs-sms-consumer.rules.yaml"


# --- durations ----------------------------------------------------------------------------------

_UNITS: Final = (("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
                 ("m", 60_000), ("s", 1000), ("ms", 1))
_DURATION: Final = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


def parse_duration(text: str) -> int:
    """A Prometheus duration (`15m`, `1h30m`, `500ms`) in milliseconds; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a Prometheus duration")
    return sum(int(value) * unit for value, (_, unit) in zip(match.groups(), _UNITS) if value)


def format_duration(milliseconds: int) -> str:
    """The shortest Prometheus spelling of a positive number of milliseconds (`15s`, `1m30s`, `250ms`)."""
    if milliseconds <= 0:
        raise ValueError(f"a duration must be positive, not {milliseconds} ms")
    parts = []
    rest = milliseconds
    for name, unit in _UNITS:
        if rest >= unit:
            parts.append(f"{rest // unit}{name}")
            rest %= unit
    return "".join(parts)


def _shorter(text: str, speedup: float) -> str:
    milliseconds = parse_duration(text)
    shortened = round(milliseconds / speedup)
    if shortened < 1:
        raise ValueError(f"{text} divided by {speedup:g} is under a millisecond")
    return format_duration(shortened)


# --- expressions --------------------------------------------------------------------------------

_OFFSET: Final = re.compile(r"(?<![\w:])(offset)(\s+)(-?)([0-9][0-9a-z]*)", re.IGNORECASE)


def shorten_expr(expr: str, speedup: float, min_range: float = 0.0) -> str:
    """`expr` with every range selector, subquery range/step and `offset` divided by `speedup`.
    String literals and comments are copied as they are. RuleRewriteError if a bracket or an
    offset does not hold a plain duration (a Grafana variable, a typo): the copy would otherwise
    silently keep the long window; also if a range would become shorter than `min_range` seconds."""
    min_range_ms = round(min_range * 1000)
    out: list[str] = []
    code: list[str] = []  # code between literals, rewritten in one piece
    i = 0

    def flush() -> None:
        if code:
            out.append(_shorten_code("".join(code), speedup, min_range_ms))
            code.clear()

    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            end = i + 1
            while end < len(expr) and expr[end] != char:
                end += 2 if char != "`" and expr[end] == "\\" else 1
            if end >= len(expr):
                raise RuleRewriteError(f"unterminated string literal in {expr!r}")
            flush()
            out.append(expr[i:end + 1])
            i = end + 1
        elif char == "#":
            end = expr.find("\n", i)
            end = len(expr) if end < 0 else end
            flush()
            out.append(expr[i:end])
            i = end
        else:
            code.append(char)
            i += 1
    flush()
    return "".join(out)


def _shorten_code(code: str, speedup: float, min_range_ms: int) -> str:
    def bracket(match: re.Match[str]) -> str:
        inside = match.group(1)
        parts = inside.split(":")
        if len(parts) > 2 or not parts[0].strip():
            raise RuleRewriteError(f"range [{inside}] is neither a duration nor a subquery")
        try:
            shortened = [_shorter(part, speedup) if part.strip() else "" for part in parts]
        except ValueError as exc:
            raise RuleRewriteError(f"range [{inside}]: {exc}") from None
        if parse_duration(shortened[0]) < min_range_ms:
            raise RuleRewriteError(f"range [{inside}] would become [{shortened[0]}], shorter than "
                                   f"{format_duration(min_range_ms)} (too few scrapes in it to compute anything)")
        return "[" + ":".join(shortened) + "]"

    def offset(match: re.Match[str]) -> str:
        keyword, space, sign, duration = match.groups()
        try:
            return f"{keyword}{space}{sign}{_shorter(duration, speedup)}"
        except ValueError as exc:
            raise RuleRewriteError(f"offset {duration}: {exc}") from None

    code = re.sub(r"\[([^\[\]]*)\]", bracket, code)
    rewritten = _OFFSET.sub(offset, code)
    leftover = re.search(r"(?<![\w:])offset\b(?!\s+-?[0-9])", rewritten, re.IGNORECASE)
    if leftover:
        raise RuleRewriteError(f"an offset without a plain duration in {code.strip()!r}")
    return rewritten


# --- rule files ---------------------------------------------------------------------------------


def shorten_rules(rules: Mapping[str, Any], speedup: float = DEFAULT_SPEEDUP, min_range: float = 0.0) -> dict[str, Any]:
    """A copy of a Prometheus rule file (as loaded by YAML) whose group intervals, `for`,
    `keep_firing_for`, range selectors and offsets are divided by `speedup`. Anything else in the
    file (names, labels, annotations, thresholds) is kept. RuleRewriteError names the rule; a range
    shorter than `min_range` seconds once divided is one (it would hold too few scrapes)."""
    if not speedup >= 1:
        raise ValueError("speedup must be at least 1")
    groups = rules.get("groups") if isinstance(rules, Mapping) else None
    if not isinstance(groups, list) or not groups:
        raise RuleRewriteError("not a Prometheus rule file: no `groups` list")
    shortened = copy.deepcopy(dict(rules))
    for group in shortened["groups"]:
        name = group.get("name", "?")
        try:
            if "interval" in group:
                group["interval"] = _shorter(str(group["interval"]), speedup)
        except ValueError as exc:
            raise RuleRewriteError(f"group {name}: interval: {exc}") from None
        for rule in group.get("rules") or []:
            what = f"group {name}, rule {rule.get('alert') or rule.get('record') or '?'}"
            if not isinstance(rule.get("expr"), str):
                raise RuleRewriteError(f"{what}: no expression")
            try:
                rule["expr"] = shorten_expr(rule["expr"], speedup, min_range)
                for key in ("for", "keep_firing_for"):
                    if key in rule:
                        rule[key] = _shorter(str(rule[key]), speedup)
            except (RuleRewriteError, ValueError) as exc:
                raise RuleRewriteError(f"{what}: {exc}") from None
    return shortened


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (expressions) as literal blocks, as in the source file."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def write_shortened_rules(source: Path, destination: Path, speedup: float = DEFAULT_SPEEDUP,
                          min_range: float = 0.0) -> Path:
    """Write the shortened copy of the rule file `source` to `destination`; `promtool check rules`
    checks it when promtool is installed (PrometheusError with its output otherwise)."""
    try:
        rules = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PrometheusError(f"cannot read the alert rules {source}: {exc.strerror or exc}") from None
    destination.write_text(
        f"# A copy of {source.name} with its time constants divided by {speedup:g} "
        "(devtools/acs_sms_devtools/prometheus.py).\n" + yaml.dump(shorten_rules(rules, speedup, min_range), Dumper=_Dumper,
                                                            sort_keys=False, width=120),
        encoding="utf-8")
    promtool = shutil.which("promtool")
    if promtool is not None:
        check = subprocess.run([promtool, "check", "rules", str(destination)], capture_output=True, text=True,
                               timeout=60)
        if check.returncode != 0:
            raise PrometheusError(f"promtool rejects the shortened rules {destination}:\n{check.stdout}{check.stderr}")
    return destination


def prometheus_config(targets: Sequence[str], rule_files: Sequence[Path] = (), scrape_interval: float = 1.0,
                      evaluation_interval: float = 1.0, job: str = JOB,
                      authorization: Mapping[str, str] | None = None) -> dict[str, Any]:
    """prometheus.yml scraping `targets` (host:port) as one job; `authorization`: the scrape config's
    (e.g. `{"type": "Bearer", "credentials_file": path}`, what a ServiceMonitor's becomes)."""
    scrape = format_duration(round(scrape_interval * 1000))
    job_config: dict[str, Any] = {"job_name": job, "static_configs": [{"targets": list(targets)}]}
    if authorization is not None:
        job_config["authorization"] = dict(authorization)
    return {
        "global": {"scrape_interval": scrape, "scrape_timeout": scrape,
                   "evaluation_interval": format_duration(round(evaluation_interval * 1000))},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [job_config],
    }


# --- the server ---------------------------------------------------------------------------------


class PrometheusServer:
    """`prometheus` on 127.0.0.1:`port` (0: a free one) with its TSDB and config in `workdir`.

    `start()` returns once /-/ready answers; `close()` stops it (SIGTERM, then SIGKILL after 10 s).
    Usable as a context manager. The API helpers return the `data` of Prometheus' answers."""

    def __init__(self, workdir: Path, targets: Sequence[str], rules: Sequence[Path] = (), *,
                 scrape_interval: float = 1.0, evaluation_interval: float = 1.0, port: int = 0,
                 job: str = JOB, log: IO[bytes] | None = None, authorization: Mapping[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.targets = list(targets)
        self.rules = list(rules)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port = port or free_port()
        self.job = job
        self.authorization = authorization
        self.log_path = self.workdir / "prometheus.log"
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        executable = find_prometheus()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(
            self.targets, self.rules, self.scrape_interval, self.evaluation_interval, self.job, self.authorization),
            sort_keys=False))
        log = self._log if self._log is not None else self.log_path.open("ab")
        self.process = subprocess.Popen(
            [executable, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={self.workdir / 'data'}", "--storage.tsdb.retention.time=1d",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if self._log is None:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self.process.returncode}) at start:\n{self.logs()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise PrometheusError(f"prometheus not ready after {timeout} s:\n{self.logs()[-3000:]}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # - HTTP API -

    def api(self, path: str, timeout: float = 10.0, **params: Any) -> Any:
        """GET /api/v1/`path` with `params`; the `data` of a success, PrometheusError otherwise."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(f"{path}: {exc}") from None
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: [{"metric": {...}, "value": [t, "v"]}, ...] (a vector)."""
        data = self.api("query", query=expr, time=at)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of an instant query (None when it returns nothing)."""
        result = self.query(expr, at)
        if len(result) > 1:
            raise PrometheusError(f"{expr} returned {len(result)} series, expected one")
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query: [{"metric": {...}, "values": [[t, "v"], ...]}, ...]."""
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), each with labels, annotations and state."""
        return self.api("alerts")["alerts"]

    def firing(self, name: str | None = None) -> list[dict[str, str]]:
        """The label sets of the firing alerts (of alert `name`)."""
        return [alert["labels"] for alert in self.alerts()
                if alert["state"] == "firing" and (name is None or alert["labels"].get("alertname") == name)]

    def rule_groups(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def target_health(self) -> dict[str, str]:
        """{instance: "up"|"down"|"unknown"} of the active targets."""
        return {t["labels"]["instance"]: t["health"] for t in self.api("targets")["activeTargets"]}

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `condition()` every 0.25 s until it holds (returns the monotonic time) or `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited ({self.process.returncode}) waiting for {what}")
            if condition():
                return time.monotonic()
            if time.monotonic() > deadline:
                raise PrometheusError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.25)
