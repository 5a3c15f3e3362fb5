"""`InMemoryCheckpointStore`: partition ownership and checkpoints in this process's memory.

For `acs-sms-consumer demo` on a machine without Azurite, and nothing else: the checkpoints vanish
with the process and cannot balance partitions across processes. It follows the SDK's
`CheckpointStore` contract (etag-guarded claims, `last_modified_time` as a timestamp) so the SDK's
load balancer behaves as with blob storage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from azure.eventhub.aio import CheckpointStore

Key = tuple[str, str, str, str]


class InMemoryCheckpointStore(CheckpointStore):
    """Development only: state lives in this process and is lost when it exits."""

    label = "in-memory checkpoint store (development only: lost when the process exits)"

    def __init__(self) -> None:
        self._ownership: dict[Key, dict[str, Any]] = {}
        self._checkpoints: dict[Key, dict[str, Any]] = {}

    @staticmethod
    def _key(item: dict[str, Any]) -> Key:
        return (item["fully_qualified_namespace"], item["eventhub_name"], item["consumer_group"], item["partition_id"])

    async def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                             **kwargs: Any) -> Iterable[dict[str, Any]]:
        scope = (fully_qualified_namespace, eventhub_name, consumer_group)
        return [dict(item) for key, item in self._ownership.items() if key[:3] == scope]

    async def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any) -> Iterable[dict[str, Any]]:
        claimed = []
        for item in ownership_list:
            key = self._key(item)
            current = self._ownership.get(key)
            if current is not None and item.get("etag") != current["etag"]:
                continue  # someone else claimed it since it was listed: the claim fails, as with blobs
            stored = {**item, "etag": uuid.uuid4().hex, "last_modified_time": time.time()}
            self._ownership[key] = stored
            claimed.append(dict(stored))
        return claimed

    async def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        self._checkpoints[self._key(checkpoint)] = dict(checkpoint)

    async def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                               **kwargs: Any) -> Iterable[dict[str, Any]]:
        scope = (fully_qualified_namespace, eventhub_name, consumer_group)
        return [dict(item) for key, item in self._checkpoints.items() if key[:3] == scope]
