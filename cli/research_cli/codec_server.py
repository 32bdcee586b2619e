"""The codec server: decrypts payloads for the Temporal Web UI and the `temporal` CLI.

It speaks the remote codec protocol of Temporal's tools: `POST /decode` and `POST /encode`
with a JSON body `{"payloads": [...]}` (the protobuf JSON form of `Payloads`) and the same
shape back. Decoding also follows references to payloads stored aside, so the UI shows a
search result or a report whole, not a pointer into the store.

Every request must be authenticated with the token of RESEARCH_CODEC_AUTH_TOKEN, either as
`Authorization: Bearer <token>` (the UI's "pass access token" setting, `temporal
--codec-auth`) or as the first segment of the path (`http://host:port/<token>/decode`), for
the dev server's UI, which sends no header of its own: `--ui-codec-endpoint` then names that
address. The token is compared in constant time and never logged. Browsers call the server
from the UI's origin, so the origins of RESEARCH_CODEC_CORS_ORIGINS get CORS headers and
preflight answers; any other origin gets none, and the browser refuses to read the answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext

from research_shared.encryption import EncryptionCodec, EncryptionError
from research_shared.payloads import Payloads as PayloadSetup
from research_shared.store import (
    DRIVER_NAME,
    StoreDriver,
    StoreError,
    UnreadableReference,
    read_reference,
)

log = structlog.get_logger(__name__)

_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
_MAX_BODY_BYTES = 64 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CodecError(Exception):
    """A payload the server cannot decode: a 400 naming why."""


class PayloadCodecService:
    """Decoding and encoding of payloads with the process's keys and store."""

    def __init__(self, payloads: PayloadSetup) -> None:
        self._codec = EncryptionCodec(payloads.keyring)
        self._driver = StoreDriver(payloads.store) if payloads.store is not None else None

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Stored payloads fetched, encrypted ones decrypted; others as they are."""
        decoded = []
        for payload in payloads:
            payload = await self._fetched(payload)
            try:
                decoded.append(self._codec.decrypt(payload))
            except EncryptionError as err:
                raise CodecError(str(err)) from None
        return decoded

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._codec.encode(payloads)

    async def _fetched(self, payload: Payload) -> Payload:
        try:
            reference = await read_reference(payload, self._codec)
        except UnreadableReference as err:
            raise CodecError(str(err)) from None
        if reference is None:
            return payload
        if reference.driver_name != DRIVER_NAME or self._driver is None:
            return payload  # not ours, or no store here: show the reference itself
        claim = StorageDriverClaim(claim_data=dict(reference.claim_data))
        try:
            [stored] = await self._driver.retrieve(StorageDriverRetrieveContext(), [claim])
        except StoreError as err:
            raise CodecError(str(err)) from None
        return stored


def _token_of(request: web.Request, token: str) -> str | None:
    """The token a request presents, by header or by its first path segment."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return presented.strip()
    first = request.path.strip("/").split("/", 1)[0]
    return first if hmac.compare_digest(first.encode(), token.encode()) else None


def build_app(payloads: PayloadSetup, token: str, origins: Sequence[str]) -> web.Application:
    """The codec server's application."""
    service = PayloadCodecService(payloads)
    allowed = {origin.rstrip("/") for origin in origins}

    def cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get("Origin", "").rstrip("/")
        if origin and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
        return response

    def refuse(request: web.Request, status: int, message: str) -> web.StreamResponse:
        return cors(request, web.json_response({"error": message}, status=status))

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            # A preflight carries no credentials; it only asks what the real request may do.
            return cors(request, web.Response(status=204))
        presented = _token_of(request, token)
        if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
            return refuse(request, 401, "a valid token is required")
        try:
            return cors(request, await handler(request))
        except web.HTTPException as err:
            return refuse(request, err.status, err.reason)

    async def handle(request: web.Request) -> web.StreamResponse:
        action = request.path.rstrip("/").rsplit("/", 1)[-1]
        if action not in ("decode", "encode"):
            return refuse(request, 404, "POST /decode or /encode")
        try:
            body = await request.read()
            message = json_format.Parse(body, Payloads())
        except (json_format.ParseError, UnicodeDecodeError, ValueError) as err:
            return refuse(request, 400, f"the body is not a JSON Payloads message: {err}")
        try:
            if action == "decode":
                result = await service.decode(message.payloads)
            else:
                result = await service.encode(message.payloads)
        except CodecError as err:
            log.warning("codec request refused", action=action, reason=str(err))
            return refuse(request, 400, str(err))
        text = json_format.MessageToJson(Payloads(payloads=result), indent=None)
        return web.Response(text=text, content_type="application/json")

    app = web.Application(middlewares=[guard], client_max_size=_MAX_BODY_BYTES)
    app.router.add_route("POST", "/{tail:.*}", handle)
    app.router.add_route("OPTIONS", "/{tail:.*}", handle)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving `app`; the caller cleans the returned runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
