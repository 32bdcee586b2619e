"""The payload store: where large payloads, recorded provider answers, cached searches and
audit manifests live, in a local folder or in S3-compatible object storage.

`open_store` builds the backend `RESEARCH_PAYLOAD_STORE` names; `StoreDriver` plugs it into
the Temporal SDK's external storage; `Records` keeps the services' own records in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from research_shared.settings import PayloadSettings
from research_shared.store import _layout as layout
from research_shared.store import _retention as retention
from research_shared.store._driver import DRIVER_NAME, StoreDriver, claim_target
from research_shared.store._file import FileObjectStore
from research_shared.store._objects import (
    IntegrityError,
    ObjectMissing,
    ObjectStore,
    StoredObject,
    StoreError,
    segment,
)
from research_shared.store._records import Records
from research_shared.store._references import (
    REFERENCE_MARKER,
    UnreadableReference,
    is_reference,
    read_reference,
)

if TYPE_CHECKING:
    from research_shared.store._s3 import S3ObjectStore

__all__ = [
    "DRIVER_NAME",
    "REFERENCE_MARKER",
    "FileObjectStore",
    "IntegrityError",
    "ObjectMissing",
    "ObjectStore",
    "Records",
    "S3ObjectStore",
    "StoreDriver",
    "StoreError",
    "StoredObject",
    "UnreadableReference",
    "claim_target",
    "is_reference",
    "layout",
    "open_store",
    "read_reference",
    "retention",
    "segment",
]


def __getattr__(name: str) -> Any:
    # The S3 backend imports botocore, a fraction of a second that a CLI command using the
    # local folder should not pay.
    if name == "S3ObjectStore":
        from research_shared.store._s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(name)


def open_store(settings: PayloadSettings) -> ObjectStore | None:
    """The store the settings name (nothing is connected yet); None when it is off."""
    url = settings.store_url()
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileObjectStore(Path(parts.path))
    from research_shared.store._s3 import S3ObjectStore

    return S3ObjectStore(
        parts.netloc,
        parts.path,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        session_token=settings.s3_session_token,
    )
