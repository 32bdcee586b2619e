"""Who is calling: an API key names an owner, and the caller's client sees only that owner's
runs.

Keys are compared by their SHA-256 only (`RESEARCH_API_KEYS` holds hashes, never keys), in
constant time. A key is never logged, echoed or kept: a refused request learns only that
its key was refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from research_shared.client import ResearchClient

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The key, in `X-API-Key` instead."
)


class KeyRing:
    """The accepted keys, as SHA-256 hex digests, each with its owner."""

    def __init__(self, owners_by_digest: dict[str, str]) -> None:
        self._owners = dict(owners_by_digest)

    @property
    def required(self) -> bool:
        return bool(self._owners)

    def owner_of(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        found = None
        for known, owner in self._owners.items():
            # Every entry is compared, so the time taken says nothing about which matched.
            if hmac.compare_digest(known, digest):
                found = owner
        return found


def _refused(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> ResearchClient:
    """The research client of the caller: scoped to the key's owner, or unscoped when the
    API needs no key (it listens on loopback only)."""
    keys: KeyRing = request.app.state.keys
    research: ResearchClient = request.app.state.research
    if not keys.required:
        return research
    key = credentials.credentials if credentials is not None else header_key
    if not key:
        raise _refused("an API key is required: send Authorization: Bearer <key>")
    owner = keys.owner_of(key)
    if owner is None:
        raise _refused("the API key was not accepted")
    return research.for_owner(owner)
