"""Heartbeating while an activity waits on something slow (a model, a remote API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity


@asynccontextmanager
async def heartbeat_every(interval: float, *details: Any) -> AsyncIterator[None]:
    """Heartbeat every `interval` seconds until the block ends.

    A worker that dies is then noticed within the heartbeat timeout rather than the
    start-to-close timeout, and a cancellation of the run reaches the activity.
    """

    async def beat() -> None:
        while True:
            activity.heartbeat(*details)
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        # Not awaited: awaiting here could swallow a cancellation aimed at the activity.
        task.cancel()
