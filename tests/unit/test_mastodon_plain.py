"""The Mastodon publisher's plain client: ``status_post`` and reading a status answer the JSON as parsed (no
typed entities), with Mastodon.py's request and error handling unchanged. A fake ``requests`` session answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from mastodon import Mastodon
from mastodon.return_types import Status

from amplifier.campaign.models import MastodonAccount
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import PermanentError, PublishContext
from amplifier.publish.engagement import PublishedPart
from amplifier.publish.mastodon import MastodonPublisher, StatusOutcomeUnknown
from amplifier.publish.mastodon_client import CAST_HOOK, answer_time, plain_client_class
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

SETTINGS = MastodonAccount(platform="mastodon", instance="https://masto.example", token_env="AMP_PLAIN_TOKEN")  # type: ignore[arg-type]
STATUS = {
    "id": "109",
    "uri": "https://masto.example/users/camp/statuses/109",
    "url": "https://masto.example/@camp/109",
    "created_at": "2027-10-25T09:00:00.000Z",
    "content": "<p>Hello</p>",
    "account": {"id": "42", "acct": "camp", "created_at": "2020-01-01T00:00:00.000Z"},
    "favourites_count": 3,
    "reblogs_count": 2,
    "replies_count": 1,
}
INSTANCE = {"version": "4.3.0", "domain": "masto.example", "configuration": {}}


class FakeSession(requests.Session):
    """Answers each request with the next (status, body) of ``answers``; records the requests."""

    def __init__(self, answers: list[tuple[int, object]]) -> None:
        super().__init__()
        self.answers = answers
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((str(method), str(url), dict(kwargs)))
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.headers["Date"] = "Mon, 25 Oct 2027 10:00:00 GMT"
        for hook in self.hooks["response"]:
            hook(response)
        return response


def client(kind: type[Mastodon], session: requests.Session) -> Mastodon:
    return kind(
        api_base_url="https://masto.example",
        access_token="plain-test-token",
        session=session,
        mastodon_version="4.3.0",
        version_check_mode="created",
        ratelimit_method="throw",
    )


def test_the_installed_mastodon_py_has_the_cast_hook_and_the_plain_client_overrides_it() -> None:
    """If a Mastodon.py release renames its cast, the plain client would silently be the typed one: this fails."""
    assert callable(getattr(Mastodon, CAST_HOOK, None))
    plain = plain_client_class()
    assert plain is not Mastodon
    assert issubclass(plain, Mastodon)
    assert CAST_HOOK in vars(plain)


def test_plain_answers_are_the_json_as_parsed_and_typed_ones_stay_typed() -> None:
    typed = client(Mastodon, FakeSession([(200, STATUS)])).status_post("Hello", idempotency_key="k")
    assert isinstance(typed, Status)
    assert isinstance(typed["created_at"], datetime)
    session = FakeSession([(200, STATUS), (200, STATUS)])
    plain = client(plain_client_class(), session)
    answer = plain.status_post("Hello", idempotency_key="k")
    assert type(answer) is dict
    assert answer == STATUS
    assert type(plain.status("109")) is dict
    method, url, sent = session.sent[0]
    assert (method, url) == ("POST", "https://masto.example/api/v1/statuses")
    assert sent["headers"]["Idempotency-Key"] == "k"
    assert sent["headers"]["Authorization"] == "Bearer plain-test-token"


@pytest.fixture
def publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MastodonPublisher:
    monkeypatch.setenv("AMP_PLAIN_TOKEN", "plain-test-token")
    ctx = PublishContext(
        secrets=SecretSources(),
        state=StateDir(tmp_path / "state"),
        clock=lambda: datetime(2027, 10, 25, 12, 0, tzinfo=UTC),
    )
    return MastodonPublisher("masto", SETTINGS, ctx)


def with_session(publisher: MastodonPublisher, answers: list[tuple[int, object]]) -> FakeSession:
    session = FakeSession([(200, INSTANCE), *answers])
    publisher._session = session
    return session


def post() -> PlannedPost:
    payload = {"status": "Hello", "visibility": "public", "language": "en"}
    part = Part(text="Hello", length=5, limit=500, payload=payload)
    at = datetime(2027, 10, 25, 11, 0, tzinfo=UTC)
    return PlannedPost(
        id="r:masto:1",
        at=at,
        rule="r",
        account="masto",
        platform="mastodon",
        lang="en",
        parts=(part,),
        message_set="m",
        variant=0,
    )


def test_publish_reads_a_plain_answer(publisher: MastodonPublisher) -> None:
    """The part's id, URLs and whether it existed (created an hour before the server's Date) from plain JSON."""
    with_session(publisher, [(200, STATUS)])
    result = publisher.publish(post())
    (part,) = result.parts
    assert (part.id, part.url, part.uri) == ("109", STATUS["url"], STATUS["uri"])
    assert part.existed is True
    assert type(publisher.plain_api()) is plain_client_class()
    assert type(publisher.api()) is Mastodon  # every other call keeps Mastodon.py's typed answers


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((422, {"error": "Validation failed: Text can't be blank"}), PermanentError),
        ((200, b"<html>proxy</html>"), StatusOutcomeUnknown),  # not JSON: the status may exist
        ((200, {"no": "id"}), StatusOutcomeUnknown),  # garbled
        ((200, b""), StatusOutcomeUnknown),  # an empty body
    ],
)
def test_publish_classifies_plain_errors_as_before(
    publisher: MastodonPublisher, answer: tuple[int, object], error: type[Exception]
) -> None:
    with_session(publisher, [answer])
    with pytest.raises(error):
        publisher.publish(post())


def test_read_engagement_reads_a_plain_answer(publisher: MastodonPublisher) -> None:
    with_session(publisher, [(200, STATUS)])
    (reading,) = publisher.read_engagement([PublishedPart("r:masto:1", 0, "109")])
    assert (reading.likes, reading.reposts, reading.replies, reading.quotes) == (3, 2, 1, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-10-25T09:00:00.000Z", datetime(2027, 10, 25, 9, 0, tzinfo=UTC)),
        ("2027-10-25T11:00:00+02:00", datetime(2027, 10, 25, 9, 0, tzinfo=UTC)),
        (datetime(2027, 10, 25, 9, 0), datetime(2027, 10, 25, 9, 0, tzinfo=UTC)),  # naive: UTC
        ("yesterday", None),
        (None, None),
        (17, None),
    ],
)
def test_answer_time_reads_typed_and_plain_times(value: object, expected: datetime | None) -> None:
    assert answer_time(value) == expected
