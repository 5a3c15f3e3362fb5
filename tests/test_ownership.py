"""consumer.ownership: a release never loses to a renewal in flight, and a stopping process claims
nothing new. Driven against a small in-memory store with the Blob store's etag rules (a write names
the etag it read; a stale one fails), with each write held until the test lets it land, so the
interleaving seen at shutdown with a slow storage account is reproduced exactly."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from consumer.ownership import OwnershipStore

OURS, OTHER = "replica-a", "replica-b"


class EtagStore:
    """Ownership blobs as {partition: (owner, etag)}; `claim_ownership` applies each write when its
    gate opens, failing it (left out of the result) when its etag is not the blob's."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[str, str]] = {}
        self.gates: list[asyncio.Event] = []
        self._etags = (f"e{n}" for n in itertools.count(1))

    async def claim_ownership(self, ownerships: list[dict[str, Any]]) -> list[dict[str, Any]]:
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        claimed = []
        for ownership in ownerships:
            current = self.blobs.get(ownership["partition_id"])
            if current is not None and current[1] != ownership.get("etag"):
                continue  # If-Match failed: someone wrote the blob since this etag was read
            etag = next(self._etags)
            self.blobs[ownership["partition_id"]] = (ownership["owner_id"], etag)
            claimed.append({**ownership, "etag": etag})
        return claimed

    async def open_next_gate(self) -> None:
        while not self.gates:
            await asyncio.sleep(0)
        self.gates.pop(0).set()
        for _ in range(5):
            await asyncio.sleep(0)


def ownership(partition: str, owner: str, etag: str | None) -> dict[str, Any]:
    return {"partition_id": partition, "owner_id": owner, "etag": etag}


async def shutdown_race(store: Any, blobs: EtagStore) -> dict[str, tuple[str, str]]:
    """Partition 0 held with etag e1; a renewal (etag e1) is in flight when the release (the SDK's
    cached etag, e1) is sent; the renewal lands first."""
    first = asyncio.ensure_future(store.claim_ownership([ownership("0", OURS, None)]))
    await blobs.open_next_gate()
    assert (await first)[0]["etag"] == "e1"
    renewal = asyncio.ensure_future(store.claim_ownership([ownership("0", OURS, "e1")]))
    release = asyncio.ensure_future(store.claim_ownership([ownership("0", "", "e1")]))
    await blobs.open_next_gate()  # the renewal lands: e2
    await blobs.open_next_gate()  # then the release
    await asyncio.gather(renewal, release)
    return blobs.blobs


async def test_without_ordering_a_release_loses_to_the_renewal_in_flight() -> None:
    blobs = EtagStore()
    assert await shutdown_race(blobs, blobs) == {"0": (OURS, "e2")}  # still ours: the next owner waits


async def test_a_release_waits_for_the_renewal_in_flight_and_names_its_etag() -> None:
    blobs = EtagStore()
    store = OwnershipStore(blobs)
    assert await shutdown_race(store, blobs) == {"0": ("", "e3")}
    assert store.held == set()


async def test_stopping_renews_what_is_held_and_claims_nothing_new() -> None:
    blobs = EtagStore()
    store = OwnershipStore(blobs)
    claim = asyncio.ensure_future(store.claim_ownership([ownership("0", OURS, None), ownership("1", OURS, None)]))
    await blobs.open_next_gate()
    await claim
    assert store.held == {"0", "1"}
    store.stop_claiming()
    release = asyncio.ensure_future(store.claim_ownership([ownership("1", "", "e2")]))
    await blobs.open_next_gate()
    await release
    # A round that was running at shutdown: renews 0, takes back 1 (just released), takes 2 (free).
    round_ = asyncio.ensure_future(store.claim_ownership(
        [ownership("0", OURS, "e1"), ownership("1", OURS, "e3"), ownership("2", OURS, None)]))
    await blobs.open_next_gate()
    assert [o["partition_id"] for o in await round_] == ["0"]
    assert blobs.blobs == {"0": (OURS, "e4"), "1": ("", "e3")}
    assert store.held == {"0"}


async def test_a_partition_another_replica_took_is_no_longer_held() -> None:
    blobs = EtagStore()
    store = OwnershipStore(blobs)
    claim = asyncio.ensure_future(store.claim_ownership([ownership("0", OURS, None)]))
    await blobs.open_next_gate()
    await claim
    blobs.blobs["0"] = (OTHER, "x1")  # stolen
    renewal = asyncio.ensure_future(store.claim_ownership([ownership("0", OURS, "e1")]))
    await blobs.open_next_gate()
    assert await renewal == []
    assert store.held == set()
    release = asyncio.ensure_future(store.claim_ownership([ownership("0", "", "e1")]))
    await blobs.open_next_gate()
    assert await release == [] and blobs.blobs["0"] == (OTHER, "x1")  # never releases someone else's
