"""The one place the local endpoint imports the SDK's private AMQP stack (``azure.eventhub._pyamqp``).

Why private modules: the endpoint encodes every frame with the very codec the SDK decodes with, so
that each performative and message section is exactly what the SDK expects (see the package's
docstring). ``_pyamqp`` is an implementation detail of azure-eventhub and may change in any release.

Checked against azure-eventhub 5.15.1: devtools/pyproject.toml pins ``>=5.15.1,<5.16`` for that
reason (the service's own range, in the top-level pyproject.toml, is not capped by it). To move the
pin: raise it, run ``pytest tests/devtools`` (the codec and protocol tests decode the endpoint's
frames with this codec and drive the real SDK clients against it) and update the version above.
"""

from __future__ import annotations

import warnings
from importlib.metadata import version

from azure.eventhub._pyamqp import _decode as amqp_decode
from azure.eventhub._pyamqp import _encode as amqp_encode
from azure.eventhub._pyamqp.endpoints import Source, Target
from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.message import Message, Properties
from azure.eventhub._pyamqp.outcomes import Accepted
from azure.eventhub._pyamqp.performatives import (
    AttachFrame,
    BeginFrame,
    CloseFrame,
    DetachFrame,
    DispositionFrame,
    EndFrame,
    FlowFrame,
    OpenFrame,
    SASLInit,
    SASLMechanism,
    SASLOutcome,
    TransferFrame,
)
from azure.eventhub._pyamqp.types import TYPE, VALUE, AMQPTypes

#: The azure-eventhub release these imports and the frame layouts built on them were checked against.
CHECKED_AGAINST = "5.15.1"


def unchecked_sdk(installed: str, checked: str = CHECKED_AGAINST) -> str | None:
    """Why `installed` (an azure-eventhub version) is not the minor the endpoint was checked against,
    or None when it is (e.g. an environment that installed the dev tools with --no-deps)."""
    if installed.split(".")[:2] == checked.split(".")[:2]:
        return None
    return (f"azure-eventhub {installed} is installed; the local Event Hubs endpoint uses its private _pyamqp "
            f"modules and was checked against {checked} (devtools/pyproject.toml pins that minor)")


if (_problem := unchecked_sdk(version("azure-eventhub"))) is not None:
    warnings.warn(_problem, RuntimeWarning, stacklevel=2)

__all__ = [
    "CHECKED_AGAINST", "unchecked_sdk", "amqp_decode", "amqp_encode", "Source", "Target", "AMQPError", "Message",
    "Properties",
    "Accepted", "AttachFrame", "BeginFrame", "CloseFrame", "DetachFrame", "DispositionFrame", "EndFrame",
    "FlowFrame", "OpenFrame", "SASLInit", "SASLMechanism", "SASLOutcome", "TransferFrame", "TYPE", "VALUE",
    "AMQPTypes",
]
