"""Records the services keep in the store beside the payloads: recorded provider answers,
cached searches, page text, audit manifests. With a key configured they are sealed with it
(`research_shared.encryption`), as payloads are by the codec."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from research_shared.encryption import Keyring, open_record, seal_record
from research_shared.store._objects import ObjectMissing, ObjectStore


class Records:
    """JSON documents and blobs in a store, sealed when a keyring is given."""

    def __init__(self, objects: ObjectStore, keyring: Keyring | None = None) -> None:
        self.objects = objects
        self.keyring = keyring

    @property
    def url(self) -> str:
        return self.objects.url

    async def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store `data` under `key` (`ObjectStore.put` says what `durable` means)."""
        await self.objects.put(key, seal_record(data, self.keyring), durable=durable)

    async def put_many(self, items: Sequence[tuple[str, bytes]], *, durable: bool = True) -> None:
        """`put` each `(key, data)` of `items` (`ObjectStore.put_many`)."""
        await self.objects.put_many(
            [(key, seal_record(data, self.keyring)) for key, data in items], durable=durable
        )

    async def get(self, key: str) -> bytes | None:
        """The plaintext under `key`, None when there is none."""
        try:
            data = await self.objects.get(key)
        except ObjectMissing:
            return None
        return open_record(data, self.keyring)

    async def put_json(self, key: str, value: Any, *, durable: bool = True) -> None:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        await self.put(key, text.encode("utf-8"), durable=durable)

    async def get_json(self, key: str) -> Any:
        """The JSON document under `key`, None when there is none."""
        data = await self.get(key)
        return None if data is None else json.loads(data)
