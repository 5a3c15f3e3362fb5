"""Partition ownership claims in order: the checkpoint store as the SDK's load balancer sees it.

Why: the SDK (azure-eventhub 5.x) renews ownership from its load-balancing loop and releases a
partition (owner id "") from the partition's close, each with the blob etag it last saw. Both run at
once at shutdown: a renewal still in flight when the release is sent carries the same etag, and when
the storage account applies the renewal first, the release fails its `If-Match` ("lost ownership",
logged by the SDK at INFO) and the partition stays ours until the ownership expires: the next replica
waits `partition_ownership_expiration_interval_seconds` for nothing. A round still running at
shutdown can also claim a partition just released. Seen with a slow storage account
(tests/e2e/test_shutdown.py, every storage chunk held 1 s).

`OwnershipStore` wraps the real checkpoint store and changes only `claim_ownership`:

- a release waits for the claims in flight, then goes out with the etag of our latest successful
  claim of that partition, so it names the blob as it is now;
- once `stop_claiming()` has been called (the shutdown), a claim may only renew a partition this
  process holds: nothing new is taken and nothing released is taken back.

Everything else goes to the wrapped store unchanged. Ownership blobs keep the SDK's own layout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from azure.eventhub.aio import CheckpointStore


class OwnershipStore:
    """A checkpoint store (the SDK's `CheckpointStore` protocol) whose ownership claims never race
    their own releases."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self._held: dict[str, str | None] = {}  # partition → etag of our latest successful claim
        self._claims_in_flight = 0
        self._claims_done = asyncio.Event()
        self._claims_done.set()
        self.stopping = False

    def stop_claiming(self) -> None:
        """From now on, claims only renew partitions already held (the shutdown)."""
        self.stopping = True

    @property
    def held(self) -> set[str]:
        """Partitions whose latest claim by this process succeeded and which it has not released."""
        return set(self._held)

    async def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        ownerships = list(ownership_list)
        releases = [o for o in ownerships if not o.get("owner_id")]
        claims = [o for o in ownerships if o.get("owner_id")]
        results: list[dict[str, Any]] = []
        if releases:
            results += await self._release(releases, **kwargs)
        if claims:
            results += await self._claim(claims, **kwargs)
        return results

    async def _release(self, releases: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        while self._claims_in_flight:  # a renewal landing after our etag was read would fail the release
            await self._claims_done.wait()
        for ownership in releases:
            partition = ownership["partition_id"]
            if partition in self._held:
                ownership["etag"] = self._held.pop(partition)  # the blob as our latest claim left it
        return list(await self.store.claim_ownership(releases, **kwargs))

    async def _claim(self, claims: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        if self.stopping:
            claims = [o for o in claims if o["partition_id"] in self._held]
            if not claims:
                return []
        self._claims_in_flight += 1
        self._claims_done.clear()
        try:
            claimed = list(await self.store.claim_ownership(claims, **kwargs))
        finally:
            self._claims_in_flight -= 1
            if not self._claims_in_flight:
                self._claims_done.set()
        won = {o["partition_id"]: o.get("etag") for o in claimed if o.get("owner_id")}
        for ownership in claims:
            partition = ownership["partition_id"]
            if partition in won:
                self._held[partition] = won[partition]
            else:
                self._held.pop(partition, None)  # taken by another replica (or the write failed)
        return claimed

    # --- the rest of the protocol, unchanged ----------------------------------------------------

    async def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                             **kwargs: Any) -> Iterable[dict[str, Any]]:
        return await self.store.list_ownership(fully_qualified_namespace, eventhub_name, consumer_group, **kwargs)

    async def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        await self.store.update_checkpoint(checkpoint, **kwargs)

    async def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                               **kwargs: Any) -> Iterable[dict[str, Any]]:
        return await self.store.list_checkpoints(fully_qualified_namespace, eventhub_name, consumer_group, **kwargs)
