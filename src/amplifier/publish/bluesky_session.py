"""The session of a Bluesky publisher: the atproto SDK's client, logged in once and reused, and every call
classified.

* The session (access + refresh token) is kept in the state store (the state folder, 0600; the ledger's
  database for the nodes of a shared ledger) and refreshed by the SDK under the session's lock
  (:mod:`amplifier.publish.bluesky_refresh`; ``on_session_change`` saves the new tokens); a password login
  happens only when there is no usable session, and :class:`~amplifier.publish.sessions.LoginGuard` keeps wrong
  credentials to a few attempts an hour.
* **Bare PDS.** No AppView is needed to publish: login with ``fetch_bsky_profile=False``, write to the session's
  DID.
* :meth:`BlueskySession._call` runs an SDK call; a saved session the server refuses is replaced by the stored
  one when another process renewed it, else by one login, and the call run again; whatever the SDK or httpx raise becomes a classified
  :class:`~amplifier.publish.base.PublishError` (:mod:`amplifier.publish.bluesky_errors`).

The base of the publisher's parts (:mod:`~amplifier.publish.bluesky_repo`,
:mod:`~amplifier.publish.bluesky_records`, :mod:`~amplifier.publish.bluesky_engagement`,
:mod:`~amplifier.publish.bluesky`). The atproto package is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from amplifier.campaign.models import BlueskyAccount
from amplifier.publish.base import (
    AuthError,
    PermanentError,
    PublishContext,
    PublishError,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.bluesky_errors import CALL_ERRORS, classify, is_session_error, login_rejected
from amplifier.publish.sessions import LoginGuard, LoginRefusedError, SessionStore

if TYPE_CHECKING:
    from atproto import Client

log = logging.getLogger(__name__)


class BlueskySession:
    """One account's SDK client and session (see the module docstring)."""

    def __init__(
        self,
        account: str,
        settings: BlueskyAccount,
        ctx: PublishContext,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.account = account
        self.settings = settings
        self.ctx = ctx
        self.service = str(settings.service).rstrip("/")
        self.sessions = SessionStore(ctx.state)
        self.guard = LoginGuard(ctx.state, clock=ctx.clock)
        self._client: Client | None = None
        self._did: str | None = None
        self._handle: str | None = None
        self._from_store = False
        self._dids: dict[str, str] = {}
        self._http = http

    def _new_client(self) -> Client:
        from atproto_client.request import Request

        from amplifier.publish.bluesky_refresh import SessionClient  # refreshed under the session's lock

        client = SessionClient(
            self.service + "/xrpc",
            sessions=self.sessions,
            account=self.account,
            request=Request(timeout=self.ctx.timeout),
        )
        client.on_session_change(self._on_session_change)
        return client

    def _on_session_change(self, event: Any, session: Any) -> None:
        from atproto import SessionEvent

        if event in (SessionEvent.CREATE, SessionEvent.REFRESH):
            self.sessions.save(self.account, session.encode())
        self._did, self._handle = session.did, session.handle

    def _session(self) -> Client:
        """The logged-in client: from the saved session when there is one (no request), else a login."""
        if self._client is not None:
            return self._client
        saved = self.sessions.load(self.account)
        if saved is not None:
            client = self._new_client()
            try:
                client.login(session_string=saved, fetch_bsky_profile=False)
            except Exception as exc:  # a damaged or foreign session file: log in afresh
                log.info("%s: discarding the saved session (%s)", self.account, type(exc).__name__)
                self.sessions.delete(self.account)
            else:
                if (
                    self._handle or ""
                ).lower() == self.settings.handle.lower() or self._did == self.settings.handle:
                    self._client, self._from_store = client, True
                    return client
                log.info("%s: the saved session is for another handle; logging in again", self.account)
                self.sessions.delete(self.account)
        return self._login()

    def _login(self) -> Client:
        from atproto_client import exceptions as ex

        # Read afresh: a corrected password is used at once (and its fingerprint differs from the rejected).
        password = self.ctx.secrets.get(self.settings.password_env, fresh=True).get_secret_value()
        fingerprint = self.guard.fingerprints.of(password)
        try:
            self.guard.check(self.account, password)
        except LoginRefusedError as exc:
            if exc.rejected:  # this very password was rejected: a credential problem
                raise AuthError(str(exc), fingerprint=fingerprint) from None
            # the hour's login budget is spent (an outage): wait, nothing to fix
            raise RateLimitedError(str(exc), reset_at=exc.retry_at) from None
        client = self._new_client()
        try:
            client.login(self.settings.handle, password, fetch_bsky_profile=False)
        except (ex.AtProtocolError, *CALL_ERRORS) as exc:
            if login_rejected(exc):
                self.guard.record(self.account, "rejected", password)
                error = classify(exc, now=self.ctx.clock(), where=self.service)
                raise AuthError(
                    f"{self.account}: {self.service} rejected the login of {self.settings.handle} with the "
                    f"password in {self.settings.password_env} ({error}); fix the password: a new one is "
                    "tried at once, the same one not for a while",
                    status=error.status,
                    fingerprint=fingerprint,
                ) from None
            self.guard.record(self.account, "failed")
            error = classify(exc, now=self.ctx.clock(), where=self.service)
            if isinstance(error, AuthError | PermanentError):  # a 4xx that is no rejection: retry later
                error = TransientError(f"the login failed ({error}); will retry", status=error.status)
            raise error from None
        self.guard.record(self.account, "ok")
        self._client, self._from_store = client, False
        return client

    def _call(
        self, fn: Any, *args: Any, write: bool = False, reading: str | None = None, **kwargs: Any
    ) -> Any:
        """Run an SDK call; when a saved session turns out dead, log in once and run it again. Whatever the
        SDK or httpx raise becomes a classified :class:`PublishError` (``write``: a lost answer leaves the
        outcome unknown; ``reading``: what a read asks for, to word its refusal)."""
        from atproto_client import exceptions as ex

        client = self._session()
        try:
            return fn(client, *args, **kwargs)
        except PublishError:
            raise
        except (ex.AtProtocolError, *CALL_ERRORS) as exc:
            if self._from_store and is_session_error(exc):
                if not self._adopt_stored(client):
                    log.info("%s: the saved session was refused; logging in again", self.account)
                    self.sessions.delete(self.account)
                    self.close()
                    self._login()
                client = self._session()
                try:
                    return fn(client, *args, **kwargs)
                except PublishError:
                    raise
                except (ex.AtProtocolError, *CALL_ERRORS) as again:
                    raise self._classify(again, write, reading) from None
            raise self._classify(exc, write, reading) from None

    @staticmethod
    def _adopt_stored(client: Client) -> bool:
        """Another process stored a newer session (it refreshed, or logged in): use it (True)."""
        from amplifier.publish.bluesky_refresh import SessionClient

        return isinstance(client, SessionClient) and client.adopt_stored()

    def _classify(self, exc: BaseException, write: bool, reading: str | None = None) -> PublishError:
        return classify(exc, now=self.ctx.clock(), write=write, where=self.service, reading=reading)

    @property
    def did(self) -> str:
        self._session()
        if self._did is None:  # pragma: no cover - the SDK always sets a DID with the session
            raise AuthError(f"{self.account}: the session has no DID")
        return self._did

    def close(self) -> None:
        if self._client is not None:
            self._client.request.close()
            self._client = None
