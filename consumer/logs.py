"""Structured logs: one JSON object per line on stdout.

Every line has `time` (UTC, ISO 8601), `level`, `logger` and `message`; event-related lines add
`partition` and `sequence_number` (pass them with `extra=`). What is logged is chosen so that no
personal data leaves the process: bodies and record values are never logged, only counts, reasons
that name fields (never their values), and Event Hubs positions. The Azure SDK's own loggers are
kept at WARNING so their chatter (connection details, tokens' expiry) stays out; what they and the
other libraries still log (an exception's repr with the peer's address, say) goes out scrubbed of
credentials, phone numbers and addresses (`consumer.errors.scrub`), like an exception logged with its
traceback, and with the `kind`,
`error_type` and `error_reason` of the exception it is about (`consumer.errors.log_fields`, the kind
as in `acs_consumer_errors_total`), so one filter on `kind` finds every line of one cause. The
service's own lines are already built that way; their numbers and addresses stay as they are.

One redaction applies to every line, whoever writes it: every string in it (the message, each field
passed with `extra=`, nested in dicts and lists) goes through `consumer.errors.scrub_secrets`, so a
credential pasted where it does not belong never reaches the log (issue #25).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

import orjson

from consumer.errors import log_fields, scrub, scrub_secrets

# Attributes every LogRecord has; anything else passed with `extra=` becomes a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_MAX_FIELD_DEPTH = 8


def _own(logger: str) -> bool:
    """Whether a logger is the service's own (`consumer.*`), whose messages never quote a value."""
    return logger.startswith("consumer.") or logger == "consumer"


def _utc_time(created: float) -> str:
    """A record's time as ISO 8601 in UTC to the millisecond, with `Z`."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        clean = scrub_secrets if _own(record.name) else scrub
        line: dict[str, object] = {
            "time": _utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _scrubbed(value, clean)
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = scrub(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        if "kind" not in line and not _own(record.name):
            error = _error_of(record)
            if error is not None:  # the SDK's warnings quote the exception: name it as our lines do
                line.update({k: v for k, v in log_fields(error).items() if k not in line})
        return orjson.dumps(line, default=str).decode()


def _scrubbed(value: object, clean: Callable[[str], str], depth: int = 0) -> object:
    """`value` (a field of a line) with `clean` applied to every string in it, nested in dicts, lists
    and tuples down to 8 levels (deeper is shown as its type only); other values as they are."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, (dict, list, tuple)) and depth >= _MAX_FIELD_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        return {clean(str(k)): _scrubbed(v, clean, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v, clean, depth + 1) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return clean(str(value))  # what orjson would print with default=str


def _error_of(record: logging.LogRecord) -> BaseException | None:
    """The exception a library's line is about: its traceback's, else the first one among its arguments."""
    if record.exc_info and isinstance(record.exc_info[1], BaseException):
        return record.exc_info[1]
    args = record.args if isinstance(record.args, tuple) else ()
    return next((arg for arg in args if isinstance(arg, BaseException)), None)


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's output as JSON lines to `stream` (stdout by default)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure", "uamqp", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # An exception nothing caught would go to stderr as Python's traceback, unscrubbed: a log line instead.
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(kind: type[BaseException], error: BaseException | None, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error or kind(), trace)
        return
    logging.getLogger("consumer").critical("uncaught exception", exc_info=(kind, error or kind(), trace))


def event_fields(partition: str, sequence_number: int | None, **more: Any) -> dict[str, Any]:
    """The `extra=` of an event-related line."""
    return {"partition": partition, "sequence_number": sequence_number, **more}
