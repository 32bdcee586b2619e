"""The Temporal SDK's external storage, over our store: large payloads go aside, history
keeps a reference.

`StoreDriver` is a `temporalio.converter.StorageDriver`. The SDK calls it for every payload
at least `payload_store_threshold` bytes large (after the codec, so an encrypted payload is
stored encrypted) and writes into the history a small `json/protobuf` reference holding
this driver's name and the claim: the object's key and the SHA-256 of its bytes. Reading
checks the bytes against that hash, so a damaged or replaced object is an error, never a
wrong value.

Objects are addressed by content: the same bytes are one object, whichever run wrote them.
Every store writes the object again even when it exists, so its modification time is that
of its newest reference; an age-based S3 lifecycle rule then never expires an object a
recent run still points at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from research_shared.store._layout import payload_key
from research_shared.store._objects import IntegrityError, ObjectStore

DRIVER_NAME = "deep-research.store"
"""The driver name written into every reference; readers look the driver up by it."""
_HASH = "sha256"


class StoreDriver(StorageDriver):
    """Stores payloads in an `ObjectStore`, content-addressed and checked on read."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def name(self) -> str:
        return DRIVER_NAME

    def type(self) -> str:
        return DRIVER_NAME

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        claims = []
        for payload in payloads:
            data = payload.SerializeToString()
            digest = hashlib.sha256(data).hexdigest()
            key = payload_key(digest)
            await self._store.put(key, data)
            claims.append(
                StorageDriverClaim(claim_data={"key": key, "hash": _HASH, "digest": digest})
            )
        return claims

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        payloads = []
        for claim in claims:
            key, digest = claim_target(claim.claim_data)
            data = await self._store.get(key)
            actual = hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise IntegrityError(
                    f"{key} in the payload store {self._store.url} does not match its "
                    f"reference (sha256 {actual}, expected {digest})"
                )
            payload = Payload()
            payload.ParseFromString(data)
            payloads.append(payload)
        return payloads


def claim_target(claim_data: Mapping[str, str]) -> tuple[str, str]:
    """The key and the expected SHA-256 of a claim this driver wrote."""
    key, digest = claim_data.get("key"), claim_data.get("digest")
    if not key or not digest or claim_data.get("hash") != _HASH:
        raise IntegrityError(f"a payload reference without a key and a sha256: {dict(claim_data)}")
    return key, digest
