"""Sending one message to one Apprise URL, with a timeout.

``apprise`` is imported here, when something is sent: commands that never notify do not load it. A failure is a
:class:`DeliveryError` whose text says why (from Apprise's own log of the attempt); the caller redacts it before
showing it, since Apprise may quote parts of the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from amplifier.notify.alerts import Message

DEFAULT_TIMEOUT = 10.0  # seconds, to connect and to read

Sender = Callable[[str, Message, float], None]
"""Sends ``message`` to ``url`` within ``timeout`` seconds or raises :class:`DeliveryError`."""


class DeliveryError(Exception):
    """A destination did not take a message."""


def send_apprise(url: str, message: Message, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Send ``message`` to the Apprise ``url``; :class:`DeliveryError` when it is not a valid Apprise URL or the
    service did not accept the message."""
    import apprise

    scheme = url.split("://", 1)[0] if "://" in url else ""
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise DeliveryError(
            f"not a usable Apprise URL (scheme {scheme!r}); see https://github.com/caronc/apprise/wiki"
            if scheme
            else "not an Apprise URL (no scheme://)"
        )
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:  # type: ignore[no-untyped-call]
        try:
            ok = plugin.notify(body=message.body, title=message.title, body_format=apprise.NotifyFormat.TEXT)
        except Exception as exc:  # a plugin's bug must not reach the daemon
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        log = captured.getvalue()
    if not ok:
        reasons = [line.strip() for line in log.splitlines() if line.strip()]
        raise DeliveryError("; ".join(reasons[-2:]) or f"the {scheme} service did not accept the message")
