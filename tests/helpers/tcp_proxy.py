"""A TCP forwarder between a worker and the Temporal server, which a test can freeze.

Frozen, it keeps every connection open but passes no more bytes either way: the worker's
calls to Temporal (an activity's completion, its heartbeats) hang as on a network that
silently drops everything, while the worker's other connections (to a provider, to the
payload store) work. A test freezes it the moment a provider answers, so the activity
cannot complete before the worker is killed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

_CHUNK = 65536


class FreezableProxy:
    """Forwards 127.0.0.1:`port` to `target` (host, port) until frozen or stopped."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def freeze(self) -> None:
        """Pass no more bytes, in either direction, on any connection."""
        self._flowing.clear()

    def stop(self) -> None:
        self._stopped.set()
        self._flowing.set()
        with self._lock:
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                self._flowing.wait()
                if self._stopped.is_set():
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
