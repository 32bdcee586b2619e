"""The contract's activity stubs, read from `research_shared.stubs` itself, so a test that
walks them covers a stub the day it is added."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from temporalio import activity

from research_shared import stubs


def activity_name(fn: Callable[..., Any]) -> str:
    """The name `fn` is registered under (it must carry `@activity.defn`)."""
    name = activity._Definition.must_from_callable(fn).name
    assert name is not None, f"{fn!r} is a dynamic activity"
    return name


def stub_activities() -> list[Callable[..., Any]]:
    """Every activity stub the contract declares, in the order of the module."""
    found = [
        fn
        for _, fn in inspect.getmembers(stubs, inspect.isfunction)
        if activity._Definition.from_callable(fn) is not None
    ]
    assert found, "research_shared.stubs declares no activity"
    return sorted(found, key=lambda fn: fn.__code__.co_firstlineno)


def io_types(fn: Callable[..., Any]) -> tuple[Any, Any]:
    """The one input model and the result model of an activity function or method."""
    hints = get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    assert len(params) == 1, f"{fn.__name__} must take one model, not {params}"
    return hints[params[0]], hints["return"]
