"""structlog set up once per process, in `main()`; JSON lines by default.

Every line passes `research_shared.redaction` on its way out, as a last line of defence:
secrets are `SecretStr` in settings and are never passed to a logger on purpose.

Both chains (structlog's own and the standard library's, which carries Temporal's logs) end
the same way: exception info is rendered to text, every value becomes plain JSON data
(strings redacted), and only then is the line rendered. So the renderer never meets a value
it cannot serialise. That matters inside the workflow sandbox, where the SDK logs a failed
workflow task with its exception: structlog's fallback for such values imports a module
lazily, the sandbox re-imports it under its restrictions, and the line is lost in a
"Logging error". Nothing here imports at log time.

Every line says which run it belongs to. Inside an activity, `research_shared.log_context`
binds `workflow_id`, `run_id`, `activity_type`, `activity_id`, `attempt` and `task_queue`
into structlog's context variables, which both chains merge. A workflow's lines come through
the SDK's `workflow.logger`, which attaches its details to the stdlib record as the
`temporal_workflow` extra (and `activity.logger` as `temporal_activity`); they are flattened
here into the same top-level fields, so one query (`workflow_id=...`) finds a run's lines in
every pool. The SDK's Rust core forwards its own lines to the stdlib logger
`temporalio.core` (see `research_shared.temporal_client.sdk_runtime`), so they are JSON too.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
import temporalio.activity
import temporalio.workflow

from research_shared.redaction import MASK, redact

_SECRET_KEYS = {"api_key", "authorization", "password", "token", "secret"}
# Attributes every stdlib LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# What the SDK's loggers attach, and the top-level field each value becomes. The workflow's
# own `attempt` is its retry attempt, not an activity's, so it is left out.
_WORKFLOW_DETAILS = {
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "workflow_type": "workflow_type",
    "task_queue": "task_queue",
    "update_id": "update_id",
    "update_name": "update_name",
}
_ACTIVITY_DETAILS = {
    "workflow_id": "workflow_id",
    "workflow_run_id": "run_id",
    "workflow_type": "workflow_type",
    "activity_type": "activity_type",
    "activity_id": "activity_id",
    "attempt": "attempt",
    "task_queue": "task_queue",
}
# The core's record of itself; its fields are on the message already.
_DROPPED_EXTRAS = frozenset({"temporal_log"})


def _loggable(value: Any) -> Any:
    """`value` as JSON data: strings redacted, containers walked, anything else its repr."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {redact(str(key)): _loggable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_loggable(item) for item in value]
    return redact(repr(value))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask values under secret-sounding keys, redact the rest, and leave only JSON data."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = MASK
        else:
            event_dict[key] = _loggable(event_dict[key])
    return event_dict


def _flatten(details: Any, fields: Mapping[str, str], event_dict: MutableMapping[str, Any]) -> None:
    if isinstance(details, Mapping):
        for source, target in fields.items():
            if details.get(source) is not None:
                event_dict.setdefault(target, details[source])


def add_record_extras(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Copy what a stdlib call passed as `extra=` into the line, with the SDK's workflow and
    activity details flattened into `workflow_id`, `run_id`, ... Values already in the line
    (bound context, the call's own keys) win."""
    record = event_dict.get("_record")
    if not isinstance(record, logging.LogRecord):
        return event_dict
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRIBUTES or key.startswith("_") or key in _DROPPED_EXTRAS:
            continue
        if key == "temporal_workflow":
            _flatten(value, _WORKFLOW_DETAILS, event_dict)
        elif key == "temporal_activity":
            _flatten(value, _ACTIVITY_DETAILS, event_dict)
        else:
            event_dict.setdefault(key, value)
    return event_dict


def resolved_format(fmt: str) -> str:
    """`auto` is readable console output at a terminal and JSON lines anywhere else (a
    container, a file, a pipe)."""
    if fmt != "auto":
        return fmt
    return "console" if sys.stderr.isatty() else "json"


def _dumps(value: Any, **kwargs: Any) -> str:
    # `redact_secrets` has made every value JSON data already; `repr` only guards against
    # a processor added after it, and never imports anything.
    kwargs["default"] = repr
    return json.dumps(value, **kwargs)


def configure_logging(level: str = "INFO", fmt: str = "auto", service: str = "") -> None:
    """Route structlog and the standard library's logging (Temporal's too) to stderr, as
    JSON lines or console text (`fmt`: json, console, or auto)."""
    fmt = resolved_format(fmt)
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False,
            # The traceback arrives as text already (`format_exc_info` below); a fancier
            # formatter would be picked by what is installed and may import as it renders.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    structlog.configure(
        processors=[*shared, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_secrets,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, add_record_extras, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx (and httpx2, which newer openai clients use) log every request line at INFO,
    # with URLs; keep that for debugging only.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # The details go into fields of their own (`add_record_extras`); appended to the message
    # too, they would make every message of a run a different string.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False
