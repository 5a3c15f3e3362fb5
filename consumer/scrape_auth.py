"""The bearer token `/metrics` requires when `http.bearer_token_path` is set.

The token is the file's content, stripped (a Kubernetes Secret mounted as a file). The file is read
at start-up (missing, unreadable or empty: the service does not start) and again whenever it changes
(its inode, size or modification time: Kubernetes swaps a symlink when it updates a mounted Secret),
so a new token takes effect without a restart; if a changed file cannot be read or is empty, the
token read last stays in force and a warning says so. A request's `Authorization: Bearer <token>` is
compared in constant time. The token is never logged.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class TokenFileError(ValueError):
    """The token file cannot be read, or holds no token."""


def _read_token(path: Path) -> bytes:
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise TokenFileError(f"http.bearer_token_path {path}: cannot be read ({type(exc).__name__})") from None
    if not token:
        raise TokenFileError(f"http.bearer_token_path {path}: is empty")
    return token


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class BearerToken:
    """The token in a file, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = _stamp(path)
        self._token = _read_token(path)

    def current(self) -> bytes:
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._token = _read_token(self.path)
            except TokenFileError as exc:
                log.warning("the bearer token file changed but holds no token: the previous token stays in "
                            "force", extra={"error_reason": str(exc)})
            else:
                log.info("bearer token for /metrics re-read", extra={"path": str(self.path)})
        return self._token

    def authorizes(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries the current token (`Bearer <token>`)."""
        if authorization is None:
            return False
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode("utf-8", "replace"), self.current())
