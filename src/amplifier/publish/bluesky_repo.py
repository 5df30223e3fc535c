"""The XRPC calls of a Bluesky publisher on its own repository: records written (``putRecord``,
``applyWrites``...) and read (``getRecord``), blobs uploaded, handles resolved.

Every write has a JSON body serialised once here and is classified as a write (a lost answer leaves the outcome
unknown). The atproto package is imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amplifier.publish.base import PermanentError
from amplifier.publish.bluesky_errors import xrpc_error
from amplifier.publish.bluesky_session import BlueskySession

if TYPE_CHECKING:
    from atproto import Client

COLLECTION = "app.bsky.feed.post"


class BlueskyRepo(BlueskySession):
    """Reads and writes of records on the account's repository (see the module docstring)."""

    def _procedure(self, nsid: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """A write (``com.atproto.repo.*``) with a JSON body; its answer's content."""
        body = json.dumps(dict(data), ensure_ascii=False).encode("utf-8")

        def call(client: Client) -> dict[str, Any]:
            response = client.invoke_procedure(
                nsid, content=body, headers={"Content-Type": "application/json"}
            )
            return dict(response.content or {})

        result: dict[str, Any] = self._call(call, write=True)
        return result

    def _put_record(
        self, rkey: str, record: Mapping[str, Any], collection: str = COLLECTION
    ) -> dict[str, Any]:
        content = self._procedure(
            "com.atproto.repo.putRecord",
            {"repo": self.did, "collection": collection, "rkey": rkey, "record": record},
        )
        if not content.get("uri") or not content.get("cid"):
            raise ValueError("a putRecord answer without uri and cid")
        return content

    def _get_record(self, rkey: str, collection: str = COLLECTION) -> dict[str, Any] | None:
        from atproto_client import exceptions as ex
        from atproto_client import models

        def call(client: Client) -> dict[str, Any] | None:
            try:
                response = client.invoke_query(
                    "com.atproto.repo.getRecord",
                    params=models.ComAtprotoRepoGetRecord.Params(
                        repo=self.did, collection=collection, rkey=rkey
                    ),
                )
            except ex.BadRequestError as exc:
                _, name, _, _ = xrpc_error(exc)
                if name == "RecordNotFound":
                    return None
                raise
            content = dict(response.content)
            if not content.get("uri") or not content.get("cid"):
                raise ValueError("a getRecord answer without uri and cid")
            return content

        result: dict[str, Any] | None = self._call(call, reading=f"the record {collection}/{rkey}")
        return result

    def _upload_blob(self, data: bytes, mime: str) -> dict[str, Any]:
        def call(client: Client) -> dict[str, Any]:
            response = client.invoke_procedure(
                "com.atproto.repo.uploadBlob", content=data, headers={"Content-Type": mime}
            )
            return dict(response.content["blob"])

        result: dict[str, Any] = self._call(call)
        return result

    def resolve_handle(self, handle: str) -> str:
        """The DID of ``handle`` (cached for the life of the publisher)."""
        handle = handle.lstrip("@").lower()
        if handle not in self._dids:
            from atproto_client import models

            def call(client: Client) -> str:
                response = client.invoke_query(
                    "com.atproto.identity.resolveHandle",
                    params=models.ComAtprotoIdentityResolveHandle.Params(handle=handle),
                )
                return str(response.content["did"])

            try:
                self._dids[handle] = self._call(call, reading=f"the DID of @{handle}")
            except PermanentError as exc:
                raise PermanentError(f"the mention @{handle}: {exc}") from None
        return self._dids[handle]
