"""acs-sms-consumer: Azure Communication Services SMS diagnostic logs → Prometheus metrics."""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("acs-sms-consumer")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
