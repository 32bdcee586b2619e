"""Heartbeating while an activity waits on something slow (a model, a remote API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity


@asynccontextmanager
async def heartbeat_every(interval: float, *details: Any) -> AsyncIterator[None]:
    """Heartbeat every `interval` seconds until the block ends, the first time one interval
    after it starts.

    A worker that dies is then noticed within the heartbeat timeout rather than the
    start-to-close timeout, and a cancellation of the run reaches the activity. A block that
    ends within one interval (a quick model call) costs the server no heartbeat: the
    server's heartbeat timeout runs from the attempt's start until a first beat, so a dead
    worker is noticed as soon as it would be with a beat at the start.
    """

    async def beat() -> None:
        await asyncio.sleep(interval)
        while True:
            activity.heartbeat(*details)
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        # Not awaited: awaiting here could swallow a cancellation aimed at the activity.
        task.cancel()
