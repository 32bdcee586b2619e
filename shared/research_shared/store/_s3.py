"""The payload store on S3-compatible object storage: AWS S3, MinIO, Ceph, GCS's S3 API.

One aiobotocore client per process, made on first use inside the running event loop (an
HTTP session belongs to one loop) and closed by `aclose`. Credentials come from the
settings when given (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
else from botocore's own chain (profiles, instance roles, IRSA on Kubernetes). Every key is
put under the prefix of `s3://bucket/prefix`, so one bucket can hold several deployments.

Retention is the bucket's lifecycle rules (docs/payloads.md): objects are always written
whole, never only when missing, so an object's age is the age of its newest reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, cast

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from research_shared.redaction import redact, register_secret
from research_shared.store._objects import (
    ObjectMissing,
    ObjectStore,
    StoredObject,
    StoreError,
    check_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3ObjectStore(ObjectStore):
    """Objects in `bucket` under `prefix`."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: SecretStr | None = None,
        session_token: SecretStr | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}"
        register_secret(secret_access_key)
        register_secret(session_token)
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": (
                secret_access_key.get_secret_value() if secret_access_key else None
            ),
            "aws_session_token": session_token.get_secret_value() if session_token else None,
            # Path-style addressing works with every S3-compatible service; virtual hosts
            # need DNS per bucket, which MinIO and test servers do not have.
            "config": AioConfig(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        }
        self._exit = AsyncExitStack()
        self._client: S3Client | None = None
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r}, endpoint_url={self.endpoint_url!r})"

    async def _s3(self) -> S3Client:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            client = self._client
            if client is None:
                options = {k: v for k, v in self._client_options.items() if v is not None}
                creator = get_session().create_client("s3", **options)
                client = cast("S3Client", await self._exit.enter_async_context(creator))
                self._client = client
        assert client is not None
        return client

    def _error(self, err: Exception, doing: str, key: str) -> StoreError:
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                return ObjectMissing(f"{key} is not in the payload store {self.url}")
            message = err.response.get("Error", {}).get("Message", "") or code
            return StoreError(
                f"cannot {doing} {key} in the payload store {self.url}: {code} {redact(message)}"
            )
        return StoreError(
            f"cannot {doing} {key} in the payload store {self.url}: {redact(str(err))}"
        )

    async def check(self) -> None:
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            reason = "no such bucket" if code in _MISSING_CODES else f"{code} (access denied?)"
            raise StoreError(f"cannot use the payload store {self.url}: {reason}") from None
        except BotoCoreError as err:
            raise StoreError(
                f"cannot reach the payload store {self.url}: {redact(str(err))}"
            ) from None

    async def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        # A PUT that succeeded is stored durably by the service, whatever `durable` says.
        s3 = await self._s3()
        try:
            await s3.put_object(Bucket=self.bucket, Key=self.prefix + check_key(key), Body=data)
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "write", key) from None

    async def get(self, key: str) -> bytes:
        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
            async with answer["Body"] as body:
                data: bytes = await body.read()
                return data
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "read", key) from None

    async def exists(self, key: str) -> bool:
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except ClientError as err:
            failure = self._error(err, "look up", key)
            if isinstance(failure, ObjectMissing):
                return False
            raise failure from None
        except BotoCoreError as err:
            raise self._error(err, "look up", key) from None
        return True

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "delete", key) from None

    async def scan(self, prefix: str) -> AsyncIterator[StoredObject]:
        s3 = await self._s3()
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            async for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"].removeprefix(self.prefix),
                        size=int(item["Size"]),
                        modified=item["LastModified"],
                    )
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "list", prefix) from None

    async def aclose(self) -> None:
        self._client = None
        await self._exit.aclose()
