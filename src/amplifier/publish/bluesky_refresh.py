"""A Bluesky session refreshed by one process at a time, across processes and nodes (the SDK client of
:class:`~amplifier.publish.bluesky_session.BlueskySession`).

A refresh (``com.atproto.server.refreshSession``) spends the session's refresh token and returns a new one: the
token rotates. Two processes (two nodes of a PostgreSQL ledger, or ``amplifier send`` beside the daemon) that
each refresh one stored session spend one token twice: the server may take the second for a replay and revoke
the session, and at best the two go on with two different sessions, one of them lost at the next save.

:class:`SessionClient` is the SDK's client with its refresh taken under the session's lock in the state store
(:meth:`amplifier.publish.sessions.SessionStore.refreshing`: a file lock in the state folder, a lock row in the
ledger's database). Under the lock it reads the stored session first: when another process refreshed it
meanwhile (its refresh token is another than this client's), the client takes that session instead of refreshing
its own spent one, and refreshes only if that one too is due. The new session is saved (the SDK's session-change
callback) before the lock is let go.
"""

from __future__ import annotations

import logging
from typing import Any

from atproto import Client
from atproto_client.client.session import Session

from amplifier.publish.sessions import SessionStore

log = logging.getLogger(__name__)


def refresh_token(session_string: str) -> str | None:
    """The refresh token of a stored session string (None: damaged)."""
    try:
        return str(Session.decode(session_string).refresh_jwt)
    except Exception:  # a damaged session: not a session to take
        return None


class SessionClient(Client):  # type: ignore[misc]  # the SDK is untyped for mypy
    """The SDK's client, its session refreshed under the account's lock in ``sessions`` (module docstring)."""

    def __init__(self, base_url: str, *, sessions: SessionStore, account: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._sessions = sessions
        self._account = account

    def adopt_stored(self) -> bool:
        """Take the stored session if it is another than this client's (another process refreshed it, or
        logged in again); True if taken."""
        stored = self._sessions.load(self._account)
        if stored is None or self._session is None:
            return False
        token = refresh_token(stored)
        if token is None or token == self._session.refresh_jwt:
            return False
        self._import_session_string(stored)
        log.info("%s: using the session another process refreshed", self._account)
        return True

    def _refresh_and_set_session(self) -> Any:
        with self._sessions.refreshing(self._account) as stored:
            if stored is not None and self._session is not None:
                token = refresh_token(stored)
                if token is not None and token != self._session.refresh_jwt:
                    self._import_session_string(stored)  # another process refreshed first: its session
                    log.info("%s: using the session another process refreshed", self._account)
                    if not self._should_refresh_session():
                        return None
            return super()._refresh_and_set_session()
