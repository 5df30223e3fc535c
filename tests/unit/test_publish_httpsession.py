"""The publishers' HTTP session: the environment's proxy settings as requests reads them, read once per host."""

from __future__ import annotations

import pytest
import requests
import requests.utils

from amplifier.publish import httpsession
from amplifier.publish.httpsession import EnvironmentSession


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "https://mastodon.example/api/v1/statuses"),
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, "https://mastodon.example/api/v1/statuses"),
        (
            {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "mastodon.example"},
            "https://mastodon.example/api/v1/statuses",
        ),
        ({"HTTP_PROXY": "http://proxy.example:3128"}, "http://127.0.0.1:8080/api/v1/statuses"),
        ({"REQUESTS_CA_BUNDLE": "/etc/ssl/bundle.pem"}, "https://mastodon.example/api/v1/statuses"),
    ],
)
def test_the_settings_are_the_ones_requests_reads(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], url: str
) -> None:
    for name in (
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    expected = requests.Session().merge_environment_settings(url, {}, None, None, None)
    assert EnvironmentSession().merge_environment_settings(url, {}, None, None, None) == expected


def test_the_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    def counting(url: str, no_proxy: str | None = None) -> dict[str, str]:
        reads.append(url)
        return {}

    monkeypatch.setattr(httpsession, "get_environ_proxies", counting)
    session = EnvironmentSession()
    for n in range(50):
        session.merge_environment_settings(f"https://a.example/api/v1/statuses/{n}", {}, None, None, None)
    session.merge_environment_settings("https://b.example/api/v1/statuses", {}, None, None, None)
    assert len(reads) == 2  # a scan of the whole environment per request was most of a post's CPU
