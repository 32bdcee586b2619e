"""What a payload store is: named objects of bytes, written whole, read whole, listed by prefix.

Keys are `/`-separated paths of printable segments (`payloads/sha256/ab/ab12...`). Both
backends, a local folder and S3-compatible object storage, keep exactly these keys, so a
store can move from one to the other by copying its objects.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

_MAX_SEGMENT_CHARS = 120


class StoreError(Exception):
    """The store cannot be used: unreachable, access denied, a folder that cannot be written."""


class ObjectMissing(StoreError):
    """No object has the key asked for."""


class IntegrityError(StoreError):
    """An object's bytes are not the ones its reference names: altered or damaged."""


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it."""

    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """`key`, or a ValueError if it could escape its store or name a folder."""
    segments = key.split("/")
    if not key or any(s in ("", ".", "..") or "\\" in s or "\0" in s for s in segments):
        raise ValueError(f"not a store key: {key!r}")
    return key


def segment(text: str) -> str:
    """`text` (a workflow id, say) as one key segment: percent-encoded, or hashed if long.

    The same text always gives the same segment, so a listing can be matched against ids
    read elsewhere (the workflows Temporal still knows).
    """
    encoded = quote(text, safe="-_")
    if len(encoded) <= _MAX_SEGMENT_CHARS:
        return encoded
    return "h-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ObjectStore(ABC):
    """A payload store backend. Safe to use from one event loop at a time."""

    url: str
    """Where the store is, for messages; it holds no credential."""

    @abstractmethod
    async def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Write `data` under `key`, replacing what was there; readers see all or nothing.

        Once it returns, the object outlives the process that wrote it. `durable` asks that
        it also outlive a crash of the machine: a local folder then flushes it to disk, which
        costs a few milliseconds a write. Objects that something refers to (a history, a
        manifest) are written durably; a recorded answer or a cached search need not be,
        because losing one costs a provider call, never a run (readers take an object cut
        short by a crash as missing).
        """

    async def put_many(self, items: Sequence[tuple[str, bytes]], *, durable: bool = True) -> None:
        """`put` each `(key, data)` of `items`, at once where the backend can; each object is
        all or nothing by itself, and all are written once this returns."""
        await asyncio.gather(*(self.put(key, data, durable=durable) for key, data in items))

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The bytes under `key`; `ObjectMissing` if there are none."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether an object has `key`."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object under `key`; nothing happens if there is none."""

    @abstractmethod
    def scan(self, prefix: str) -> AsyncIterator[StoredObject]:
        """Every object whose key starts with `prefix` (a folder: `calls/`), in no order."""

    @abstractmethod
    async def check(self) -> None:
        """Raise `StoreError` if the store cannot be reached or written; a process calls
        this when it starts, so a wrong setting shows at once rather than on the first
        large payload."""

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        return None
