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
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from research_shared.redaction import MASK, redact

_SECRET_KEYS = {"api_key", "authorization", "password", "token", "secret"}


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


def _dumps(value: Any, **kwargs: Any) -> str:
    # `redact_secrets` has made every value JSON data already; `repr` only guards against
    # a processor added after it, and never imports anything.
    kwargs["default"] = repr
    return json.dumps(value, **kwargs)


def configure_logging(level: str = "INFO", fmt: str = "json", service: str = "") -> None:
    """Route structlog and the standard library's logging (Temporal's too) to stderr."""
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
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx (and httpx2, which newer openai clients use) log every request line at INFO,
    # with URLs; keep that for debugging only.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
