"""The payload store in a local folder: the embedded stack's default, shared by its pools.

Each object is one file at its key's path. A write goes to a temporary file in the same
folder and is renamed over the target, so a reader (another pool, a process killed half-way
through a write) sees the old bytes or the new ones, never part of either.

Where the work runs: a write flushed to disk (`durable=True`) waits on the disk for
milliseconds and runs in a thread, off the event loop; `put_many` writes its objects in one
hop to a thread, and flushes them once all are written. Reads and unflushed writes run on the
event loop itself: they are a few system calls that the page cache answers (a 4 KB record:
about 0.02 ms to read, 0.2 ms to write, measured on the benchmark machine), less than a hop
to a thread and back costs a process that makes dozens of them a search (handing the work to
a thread, waking it, taking the GIL back, waking the loop). docs/benchmarks.md has the
figures. The folder is meant to be local; on a network file system a read could stall the
loop, and the S3 store is the one for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from research_shared.store._objects import (
    ObjectMissing,
    ObjectStore,
    StoredObject,
    StoreError,
    check_key,
)

_PARTIAL = ".partial-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class FileObjectStore(ObjectStore):
    """Objects as files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"
        # The hot paths join strings: a pathlib join costs more than the write it names.
        self._prefix = os.path.join(os.fspath(root), "")

    def __repr__(self) -> str:
        return f"FileObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> str:
        return self._prefix + check_key(key)

    async def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        if durable:
            await asyncio.to_thread(self._put, self._path(key), data, durable)
        else:
            self._put(self._path(key), data, durable)

    async def put_many(self, items: Sequence[tuple[str, bytes]], *, durable: bool = True) -> None:
        # One hop to a thread for all of them: each hop costs more than a small write.
        if not items:
            return
        paths = [(self._path(key), data) for key, data in items]
        if durable:
            await asyncio.to_thread(self._put_many, paths, durable)
        else:
            self._put_many(paths, durable)

    def _put(self, path: str, data: bytes, durable: bool) -> None:
        self._put_many([(path, data)], durable)

    def _put_many(self, items: Sequence[tuple[str, bytes]], durable: bool) -> None:
        # Plain system calls: the folder is made only when a file cannot be created for the
        # want of it, and no buffered file object sits between the bytes and the file. Every
        # file is written before any is flushed: on a journaling file system in ordered mode
        # (ext4's default) the first flush commits the others' data with it, and theirs then
        # find little left to do.
        written: list[tuple[int, str, str]] = []  # descriptor, partial file, target
        current = items[0][0] if items else self._prefix
        try:
            try:
                for path, data in items:
                    current = path
                    folder = path.rpartition("/")[0]
                    partial = f"{folder}/{_PARTIAL}{uuid.uuid4().hex}"
                    try:
                        fd = os.open(partial, _CREATE, 0o644)
                    except FileNotFoundError:
                        os.makedirs(folder, exist_ok=True)
                        fd = os.open(partial, _CREATE, 0o644)
                    written.append((fd, partial, path))
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                for fd, _, path in written if durable else ():
                    current = path
                    os.fsync(fd)
            finally:
                for fd, _, _ in written:
                    os.close(fd)
            for _, partial, path in written:
                current = path
                os.replace(partial, path)
        except OSError as err:
            for _, partial, _ in written:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
            raise StoreError(
                f"cannot write {current} in the payload store: {err.strerror}"
            ) from None

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot make the payload store folder {self.root}: {err.strerror}"
            ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"the payload store folder {self.root} is not writable")

    async def get(self, key: str) -> bytes:
        # On the event loop (the module's docstring says why).
        return self._get(self._path(key), key)

    def _get(self, path: str, key: str) -> bytes:
        try:
            with open(path, "rb", buffering=0) as file:
                return file.readall()
        except FileNotFoundError:
            raise ObjectMissing(f"{key} is not in the payload store {self.url}") from None
        except OSError as err:
            raise StoreError(f"cannot read {path} in the payload store: {err.strerror}") from None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(os.path.isfile, self._path(key))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(Path(self._path(key)).unlink, True)

    async def scan(self, prefix: str) -> AsyncIterator[StoredObject]:
        for found in await asyncio.to_thread(self._scan, prefix):
            yield found

    def _scan(self, prefix: str) -> list[StoredObject]:
        folder = prefix.rpartition("/")[0]
        base = self.root / folder if folder else self.root
        found: list[StoredObject] = []
        for directory, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(_PARTIAL):
                    continue
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # deleted meanwhile
                found.append(
                    StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
                )
        return found
