"""Redaction of secrets in any text that comes from a server (defect 7 of issue 8)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amplifier import redact as redaction
from amplifier.publish.base import AuthError, TransientError
from amplifier.publish.secrets import SecretSources
from amplifier.redact import MASK, redact, register


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    redaction.forget_all()
    yield
    redaction.forget_all()


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ('{"error":"Unauthorized","echo":{"authorization":"Bearer tok-123456"}}', "tok-123456"),
        ("headers {'Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
        ("password=hunter2&user=x", "hunter2"),
        ('{"identifier": "camp.test", "password": "p4ss \\" word"}', "p4ss"),
        (
            "refreshJwt: x eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjIn0.c2lnbmF0dXJl",
            "eyJzdWIiOiJkaWQ6cGxjIn0",
        ),
        ('{"accessJwt": "abc-secret-123"}', "abc-secret-123"),
        ("access_token=zzz-token-1&x=1", "zzz-token-1"),
    ],
)
def test_credentials_are_redacted_by_shape(text: str, gone: str) -> None:
    cleaned = redact(text)
    assert gone not in cleaned
    assert MASK in cleaned


def test_known_secret_values_are_redacted_in_every_form() -> None:
    secret = "s3cr3t/pass word+%"
    register(secret)
    for text in (
        f"echo: {secret}!",
        "echo: s3cr3t%2Fpass%20word%2B%25",  # URL-encoded
        "echo: s3cr3t%2Fpass+word%2B%25",  # form-encoded
    ):
        assert "s3cr3t" not in redact(text), text


def test_many_secrets_each_masked_the_longest_first_and_registration_after_use_counts() -> None:
    """A thousand accounts' tokens: a text is checked against the ones whose head it holds (an index rebuilt
    after each registration), a secret that contains another is masked whole, and the heads of two secrets
    may be the same."""
    tokens = [f"tok{n:04d}-{'x' * 39}" for n in range(1000)]
    for token in tokens:
        register(token)
    assert redact(f"a {tokens[7]} b {tokens[999]}") == f"a {MASK} b {MASK}"
    assert redact("nothing secret here") == "nothing secret here"
    register("tok0007-short")  # the same head as tokens[7], shorter; registered after a redact
    register("abcdef")
    register("abcdefghij")  # contains "abcdef": masked whole, not as [redacted]ghij
    assert redact("x tok0007-short y abcdefghij z abcdef") == f"x {MASK} y {MASK} z {MASK}"
    assert redact(f"{tokens[7]}") == MASK


def test_short_values_are_not_registered_and_plain_text_is_kept() -> None:
    register("abc")
    assert redact("abc HTTP 401: Unauthorized") == "abc HTTP 401: Unauthorized"


def test_every_secret_read_is_registered_and_publish_errors_never_hold_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMP_REDACT_TOKEN", "tok-value-98765")
    SecretSources().get("AMP_REDACT_TOKEN")
    error = AuthError("the server answered 401: {'token': 'tok-value-98765', 'hint': tok-value-98765}")
    assert "tok-value-98765" not in str(error)
    assert "tok-value-98765" not in str(
        TransientError("x tok-value-98765").with_context(done={}, account="a", post_id="p")
    )
