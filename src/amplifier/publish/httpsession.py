"""The HTTP session of a publisher: ``requests`` with the environment's proxy settings read once per host.

``requests`` reads the proxy settings at every request by scanning the whole environment twice
(``getproxies_environment``): about 4 ms a request when the environment holds the tokens of 1,000 accounts, which
is most of the CPU a post costs. A process's environment does not change from outside once it runs, so
:class:`EnvironmentSession` reads them once per scheme and host and then behaves as ``requests`` does
(``trust_env``: the proxies, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting as _merge_setting
from requests.utils import get_environ_proxies

merge_setting: Callable[[Any, Any], Any] = _merge_setting  # untyped in requests


class EnvironmentSession(requests.Session):
    """A :class:`requests.Session` that reads the environment's proxy settings once per scheme and host."""

    def __init__(self) -> None:
        super().__init__()
        self._environ_proxies: dict[tuple[str, str, str | None], dict[str, str]] = {}
        self._environ_lock = threading.Lock()

    def environ_proxies(self, url: str, no_proxy: str | None) -> dict[str, str]:
        """The environment's proxies for ``url`` (as ``requests.utils.get_environ_proxies``), cached per host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        with self._environ_lock:
            found = self._environ_proxies.get(key)
            if found is None:
                found = self._environ_proxies[key] = dict(get_environ_proxies(url, no_proxy=no_proxy))
            return found

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """What ``requests.Session.merge_environment_settings`` returns, without its scan per request."""
        if not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if proxies is not None:
            for scheme, proxy in self.environ_proxies(url, proxies.get("no_proxy")).items():
                proxies.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return {
            "proxies": merge_setting(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }
