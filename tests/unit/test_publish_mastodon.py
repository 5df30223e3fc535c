"""Mastodon publisher logic that needs no server: lengths, instance limits, part checks, media polling."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from amplifier.campaign.models import MastodonAccount
from amplifier.plan.post import Image, Part, PlannedPost
from amplifier.publish import PartResult, PermanentError, PublishContext, TransientError
from amplifier.publish.mastodon import (
    DEFAULT_LIMITS,
    LOOKUP_PAGES,
    LookupIncomplete,
    MastodonPublisher,
    comparable,
    html_to_text,
    parse_instance,
)
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

SETTINGS = MastodonAccount(platform="mastodon", instance="https://masto.example", token_env="AMP_UNIT_TOKEN")  # type: ignore[arg-type]


def test_parse_instance_reads_limits_and_keeps_defaults() -> None:
    data = {
        "version": "4.3.2",
        "domain": "masto.example",
        "configuration": {
            "statuses": {
                "max_characters": 1000,
                "characters_reserved_per_url": 23,
                "max_media_attachments": 6,
            },
            "media_attachments": {"description_limit": 3000, "image_size_limit": 16777216},
        },
    }
    limits = parse_instance(data)
    assert limits["max_characters"] == 1000
    assert limits["max_media_attachments"] == 6
    assert limits["description_limit"] == 3000
    assert limits["version"] == "4.3.2"
    assert parse_instance({}) == {**DEFAULT_LIMITS, "version": "", "domain": "", "api_version": 0}
    assert (
        parse_instance({"configuration": {"statuses": {"max_characters": "lots"}}})["max_characters"] == 500
    )


@pytest.fixture
def publisher(tmp_path: Path) -> MastodonPublisher:
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), media_wait=2.0)
    return MastodonPublisher("masto", SETTINGS, ctx)


def part(status: str, images: tuple[Image, ...] = (), **extra: Any) -> Part:
    payload = {"status": status, "visibility": "public", "language": "en", **extra}
    return Part(text=status, length=0, limit=500, payload=payload, images=images)


@pytest.mark.parametrize(
    ("the_part", "words"),
    [
        (part("x" * 501), "501 characters"),
        (part("x" * 490, spoiler_text="x" * 11), "with the content warning"),
        (part("x", media_ids=[{"$upload": f"/{n}.png"} for n in range(5)]), "5 images"),
        (part("x", images=(Image(path="/a.png", alt="a" * 1501, mime="image/png"),)), "alt text of a.png"),
        (part("x", poll={"options": ["a"]}), "unknown status parameter"),
    ],
)
def test_check_part_refuses_what_the_instance_would(
    publisher: MastodonPublisher, the_part: Part, words: str
) -> None:
    with pytest.raises(PermanentError, match=words):
        publisher.check_part(the_part, dict(DEFAULT_LIMITS))


def test_check_part_accepts_a_part_at_the_limit(publisher: MastodonPublisher) -> None:
    publisher.check_part(part("x" * 500), dict(DEFAULT_LIMITS))


@pytest.mark.parametrize(
    ("text", "spoiler", "per_url", "expected"),
    [
        ("hello", "", 23, 5),
        ("hello", "cw", 23, 7),  # the content warning counts too
        ("https://example.org/a/very/long/path/indeed/more/than/twenty/three", "", 23, 23),
        ("see https://example.org/x", "", 23, 4 + 23),
        ("see https://example.org/x", "", 30, 4 + 30),  # the instance's own URL weight
        ("hi @bob@example.social", "", 23, 7),  # a remote mention counts as @bob
        ("👩‍👩‍👧‍👦", "", 23, 1),  # one grapheme cluster
        ("Bijî berxwedana Kobanê!", "", 23, 23),
        # The server counts the content warning and the text joined: a combining mark at the start of the
        # text joins the warning's last character (as the preview counts it), 4 and not 1 + 4.
        ("\u0301abc", "e", 23, 4),
    ],
)
def test_check_part_counts_as_the_server_and_the_preview_do(
    publisher: MastodonPublisher, text: str, spoiler: str, per_url: int, expected: int
) -> None:
    the_part = part(text, spoiler_text=spoiler) if spoiler else part(text)
    limits = {**DEFAULT_LIMITS, "characters_reserved_per_url": per_url, "max_characters": expected}
    publisher.check_part(the_part, limits)  # exactly at the limit: accepted
    with pytest.raises(PermanentError, match=f"counts {expected} characters"):
        publisher.check_part(the_part, {**limits, "max_characters": expected - 1})


class FakeApi:
    """Stands in for Mastodon.py: an upload answered 202 (url null) that is processed after two polls."""

    def __init__(self, polls_needed: int) -> None:
        self.polls_needed = polls_needed
        self.polls = 0
        self.uploaded: list[tuple[str, str | None, str | None]] = []

    def media_post(
        self, path: str, mime_type: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        self.uploaded.append((path, mime_type, description))
        return {"id": "77", "url": None}

    def media(self, media_id: str) -> dict[str, Any]:
        self.polls += 1
        done = self.polls >= self.polls_needed
        return {"id": media_id, "url": "https://masto.example/m/77.png" if done else None}


def test_upload_waits_for_processing(
    publisher: MastodonPublisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "a.png"
    PILImage.new("RGB", (4, 4)).save(image)
    fake = FakeApi(polls_needed=2)
    monkeypatch.setattr(publisher, "api", lambda: fake)
    monkeypatch.setattr("amplifier.publish.mastodon.time.sleep", lambda _s: None)
    the_part = part(
        "x",
        images=(Image(path=str(image), alt="Alt", mime="image/png"),),
        media_ids=[{"$upload": str(image)}],
    )
    params = publisher.build_params(the_part, {})
    assert params["media_ids"] == ["77"]
    assert fake.uploaded == [(str(image), "image/png", "Alt")]
    assert fake.polls == 2


def test_upload_that_never_finishes_is_transient(
    publisher: MastodonPublisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "a.png"
    PILImage.new("RGB", (4, 4)).save(image)
    monkeypatch.setattr(publisher, "api", lambda: FakeApi(polls_needed=10**9))
    clock = iter(float(n) for n in range(10**6))
    monkeypatch.setattr("amplifier.publish.mastodon.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("amplifier.publish.mastodon.time.sleep", lambda _s: None)
    the_part = part(
        "x", images=(Image(path=str(image), alt="A", mime="image/png"),), media_ids=[{"$upload": str(image)}]
    )
    with pytest.raises(TransientError, match="did not finish processing"):
        publisher.build_params(the_part, {})


def test_missing_image_is_permanent(publisher: MastodonPublisher) -> None:
    the_part = part(
        "x",
        images=(Image(path="/nope.png", alt="A", mime="image/png"),),
        media_ids=[{"$upload": "/nope.png"}],
    )
    with pytest.raises(PermanentError, match="does not exist"):
        publisher.build_params(the_part, {})


def test_reply_needs_the_previous_part(publisher: MastodonPublisher) -> None:
    with pytest.raises(PermanentError, match="part 0 must be published"):
        publisher.build_params(part("x", in_reply_to_id={"$ref": "part:0"}), {})


# --------------------------------------------------------------------------------------------- finding a post


def mastodon_html(text: str) -> str:
    """Roughly what Mastodon's TextFormatter makes of a plain-text status: escaped text, web links split into
    an invisible scheme, 30 shown characters (with an ellipsis) and an invisible rest, paragraphs and line
    breaks."""
    import html
    import re

    def link(url: str) -> str:
        prefix = re.match(r"https?://(www\.)?", url)
        head = prefix.group(0) if prefix else ""
        shown, rest = url[len(head) : len(head) + 30], url[len(head) + 30 :]
        return (
            f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener noreferrer">'
            f'<span class="invisible">{html.escape(head)}</span>'
            f'<span class="{"ellipsis" if rest else ""}">{html.escape(shown)}</span>'
            f'<span class="invisible">{html.escape(rest)}</span></a>'
        )

    paragraphs = re.split(r"\n\n+", text.strip())
    out = []
    for paragraph in paragraphs:
        lines = []
        for line in paragraph.split("\n"):
            pieces = re.split(r"(https?://\S+)", line)
            lines.append("".join(link(p) if i % 2 else html.escape(p) for i, p in enumerate(pieces)))
        out.append("<p>" + "<br />".join(lines) + "</p>")
    return "".join(out)


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("<p>Hello</p>", "Hello"),
        ("<p>one</p><p>two<br />three</p>", "one\n\ntwo\nthree"),
        ("<p>a &amp; b &lt;3 &quot;q&quot; &#39;s&#39;</p>", "a & b <3 \"q\" 's'"),
        (
            '<p>see <a href="https://example.org/a/very/long/path/that/is/cut/off?x=1&amp;y=2" rel="nofollow">'
            '<span class="invisible">https://</span><span class="ellipsis">example.org/a/very/long/path/t'
            '</span><span class="invisible">hat/is/cut/off?x=1&amp;y=2</span></a>.</p>',
            "see https://example.org/a/very/long/path/that/is/cut/off?x=1&y=2.",
        ),
        (
            '<p><a href="https://m.example/tags/Rojava" class="mention hashtag" rel="tag">#<span>Rojava</span>'
            '</a> <span class="h-card"><a href="https://o.example/@bob" class="u-url mention">@<span>bob</span>'
            "</a></span></p>",
            "#Rojava @bob",
        ),
        ("<p>**bold** <strong>b</strong> <em>i</em></p>", "**bold** b i"),
        ("", ""),
    ],
)
def test_html_to_text(content: str, text: str) -> None:
    assert html_to_text(content) == text


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Noch 3 Tage!\n\n#Rojava", "noch 3 tage! #rojava", True),
        ("hi @bob@o.example", "hi @bob", True),  # Mastodon shows a known remote account as @bob
        ("mail me@example.org", "mail me", False),  # an address is not a mention
        ("**Alle** hin", "Alle hin", True),  # mastodon-mock renders light markdown
        ("Cafe\u0301", "Café", True),  # NFC
        ("3 days left", "2 days left", False),
        ("a  b\tc", "a b c", True),
    ],
)
def test_comparable(a: str, b: str, same: bool) -> None:
    assert (comparable(a) == comparable(b)) is same


_TOKENS = [
    *"abcXYZ äöü ßçé 0123!?.,:;#@&<>*~`\"'/-_\n",
    "😀",
    " https://example.org/a/long/path/beyond/thirty?q=1&r=2",
]
_TEXT = st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join)


@given(_TEXT)
@settings(max_examples=200, deadline=None)
def test_a_status_rendered_by_mastodon_or_the_mock_compares_equal_to_its_text(text: str) -> None:
    from mastodon_mock.content_format import render_status_html

    assert comparable(html_to_text(mastodon_html(text))) == comparable(text)
    if re.search(r"https?://\S*[*~`]", text):
        return  # the mock applies its markdown inside a link's href too (broken HTML); Mastodon has no markdown
    assert comparable(html_to_text(render_status_html(text))) == comparable(text)


def status(sid: str, text: str, created: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "content": mastodon_html(text),
        "created_at": created,
        "url": f"https://masto.example/@camp/{sid}",
        "uri": f"https://masto.example/users/camp/statuses/{sid}",
        "spoiler_text": "",
        "language": "en",
        "in_reply_to_id": None,
        "media_attachments": [],
        "reblog": None,
        **extra,
    }


AT = datetime(2027, 10, 30, 9, 0, tzinfo=UTC)


def planned_post(*parts: Part) -> PlannedPost:
    return PlannedPost(
        id="r:masto:2027-10-30T10:00",
        at=AT,
        rule="r",
        account="masto",
        platform="mastodon",
        lang="en",
        parts=parts,
        message_set="m",
        variant=0,
    )


def reply(status_text: str, to: int) -> Part:
    return part(status_text, in_reply_to_id={"$ref": f"part:{to}"})


@pytest.mark.parametrize(
    ("the_part", "found_status", "matches"),
    [
        (part("Hello https://example.org/x"), status("1", "Hello https://example.org/x", AT), True),
        (part("Hello"), status("1", "Hello!", AT), False),
        (part("Hi", spoiler_text="CW"), status("1", "Hi", AT, spoiler_text="CW"), True),
        (part("Hi", spoiler_text="CW"), status("1", "Hi", AT), False),
        (part("Hi", language="de"), status("1", "Hi", AT, language="de-DE"), True),
        (part("Hi", language="de"), status("1", "Hi", AT, language="en"), False),
        (part("Hi", language="de"), status("1", "Hi", AT, language=None), True),
        (part("Hi"), status("1", "Hi", AT, in_reply_to_id="9"), False),  # a reply is not a first part
        (
            part("Hi", media_ids=[{"$upload": "/a.png"}], images=(Image("/a.png", "A poster", "image/png"),)),
            status("1", "Hi", AT, media_attachments=[{"id": "5", "description": "A poster"}]),
            True,
        ),
        (
            part("Hi", media_ids=[{"$upload": "/a.png"}], images=(Image("/a.png", "A poster", "image/png"),)),
            status("1", "Hi", AT, media_attachments=[{"id": "5", "description": "Another image"}]),
            False,
        ),
        (
            part("Hi", media_ids=[{"$upload": "/a.png"}], images=(Image("/a.png", "A poster", "image/png"),)),
            status("1", "Hi", AT),
            False,
        ),
    ],
)
def test_part_matches(
    publisher: MastodonPublisher, the_part: Part, found_status: dict[str, Any], matches: bool
) -> None:
    assert publisher.part_matches(the_part, found_status, {}) is matches


class PagedApi:
    """Stands in for Mastodon.py: the account's statuses, newest first, 40 a page (``max_id`` paging)."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = sorted(statuses, key=lambda s: int(s["id"]), reverse=True)
        self.pages = 0
        self.verified = 0

    def account_verify_credentials(self) -> dict[str, Any]:
        self.verified += 1
        return {"id": "42", "acct": "camp"}

    def account_statuses(
        self, account_id: str, limit: int = 20, max_id: str | None = None
    ) -> list[dict[str, Any]]:
        assert account_id == "42"
        self.pages += 1
        older = [s for s in self.statuses if max_id is None or int(s["id"]) < int(max_id)]
        return older[:limit]


def with_api(publisher: MastodonPublisher, api: PagedApi) -> MastodonPublisher:
    publisher._api = api  # type: ignore[assignment]
    return publisher


def test_find_published_matches_a_thread_in_order_and_stops_at_the_first_missing_part(
    publisher: MastodonPublisher,
) -> None:
    post = planned_post(part("One"), reply("Two", 0), reply("Three", 1))
    api = PagedApi(
        [
            status("10", "One", AT - timedelta(days=7)),  # an older twin: before the window
            status("20", "One", AT + timedelta(minutes=1)),
            status("21", "Two", AT + timedelta(minutes=1), in_reply_to_id="10"),  # replies to the twin
            status("22", "Two", AT + timedelta(minutes=1), in_reply_to_id="20"),
            status("30", "Unrelated", AT + timedelta(minutes=5)),
        ]
    )
    found = with_api(publisher, api).find_published(post, since=AT)
    assert {i: p.id for i, p in found.items()} == {0: "20", 1: "22"}
    assert all(p.existed for p in found.values())
    assert found[0].url == "https://masto.example/@camp/20"
    # known parts anchor the replies and are not returned again
    again = publisher.find_published(post, since=AT, known={0: found[0]})
    assert {i: p.id for i, p in again.items()} == {1: "22"}
    assert api.verified == 1  # the account id is asked once


def test_find_published_pages_back_to_the_window_and_no_further(publisher: MastodonPublisher) -> None:
    post = planned_post(part("The one"))
    old = [status(str(100 + n), f"Old {n}", AT - timedelta(days=1)) for n in range(100)]
    new = [status(str(1000 + n), f"Later {n}", AT + timedelta(minutes=5)) for n in range(60)]
    api = PagedApi([*old, status("500", "The one", AT), *new])
    found = with_api(publisher, api).find_published(post, since=AT)
    assert found[0].id == "500"
    assert api.pages == 2  # 60 newer + the one fill page 2, which also shows the first old one: stop


def test_find_published_says_so_when_the_window_is_too_deep(publisher: MastodonPublisher) -> None:
    post = planned_post(part("The one"))
    many = [
        status(str(1000 + n), f"Later {n}", AT + timedelta(minutes=5)) for n in range(LOOKUP_PAGES * 40 + 1)
    ]
    api = PagedApi([status("500", "The one", AT), *many])
    with pytest.raises(LookupIncomplete, match="cannot tell"):
        with_api(publisher, api).find_published(post, since=AT)
    assert api.pages == LOOKUP_PAGES


def test_find_published_nothing_found_is_empty(publisher: MastodonPublisher) -> None:
    api = PagedApi([status("1", "Something else", AT + timedelta(minutes=1))])
    assert with_api(publisher, api).find_published(planned_post(part("Mine")), since=AT) == {}
    assert with_api(publisher, PagedApi([])).find_published(planned_post(part("Mine")), since=AT) == {}


def test_find_published_never_takes_a_status_the_ledger_gives_to_another_post(
    publisher: MastodonPublisher,
) -> None:
    """Defect 1: two posts with the same text a minute apart; the first one's status is recorded, the
    second one's request never reached the server. Its search must find nothing, not the first status."""
    post = planned_post(part("Come to the square at six"))
    api = PagedApi([status("10", "Come to the square at six", AT - timedelta(minutes=1))])
    assert with_api(publisher, api).find_published(post, since=AT, taken={"10"}) == {}
    # the post's own recorded parts are not "taken" from it
    known = {0: PartResult(index=0, id="10")}
    assert publisher.find_published(post, since=AT, known=known, taken={"10"}) == {}
    assert publisher.find_published(post, since=AT) != {}  # (without the ledger's word it would be)


def test_find_published_takes_the_twin_created_closest_to_the_first_possible_request(
    publisher: MastodonPublisher,
) -> None:
    """Identical texts, neither recorded: the status made by a request sent at ``since`` is the one created
    nearest to it, not the oldest in the window, whichever order the server lists them in."""
    post = planned_post(part("Same words"), reply("Second", 0))
    api = PagedApi(
        [
            status("10", "Same words", AT - timedelta(minutes=1)),  # the other post's, a minute before
            status("11", "Second", AT - timedelta(minutes=1), in_reply_to_id="10"),
            status("20", "Same words", AT + timedelta(seconds=2)),
            status("21", "Second", AT + timedelta(seconds=3), in_reply_to_id="20"),
            status("30", "Same words", AT + timedelta(minutes=1)),  # a later twin
        ]
    )
    found = with_api(publisher, api).find_published(post, since=AT)
    assert {i: p.id for i, p in found.items()} == {0: "20", 1: "21"}
    earlier = publisher.find_published(post, since=AT - timedelta(minutes=1))
    assert {i: p.id for i, p in earlier.items()} == {0: "10", 1: "11"}


@pytest.mark.parametrize(
    ("created", "date_header", "existed"),
    [
        (datetime(2027, 10, 25, 9, 0, tzinfo=UTC), "Mon, 25 Oct 2027 10:00:00 GMT", True),  # an hour old
        (datetime(2027, 10, 25, 9, 0), "Mon, 25 Oct 2027 10:00:00 GMT", True),  # naive: read as UTC
        (
            datetime(2027, 10, 25, 9, 59, 59, tzinfo=UTC),
            "Mon, 25 Oct 2027 10:00:00 GMT",
            False,
        ),  # within margin
        (datetime(2027, 10, 25, 9, 0, tzinfo=UTC), "", True),  # no Date header: our clock (12:00)
        (datetime(2027, 10, 25, 11, 59, 59, tzinfo=UTC), "garbage", False),
        ("2027-10-25T09:00:00Z", "Mon, 25 Oct 2027 10:00:00 GMT", True),  # a plain answer's ISO text
        ("not a time", "Mon, 25 Oct 2027 10:00:00 GMT", False),  # cannot tell
        (None, "Mon, 25 Oct 2027 10:00:00 GMT", False),
    ],
)
@pytest.mark.parametrize("header_name", ["Date", "date", "DATE"])
def test_a_status_is_old_when_created_before_the_server_answered(
    tmp_path: Path, created: object, date_header: str, existed: bool, header_name: str
) -> None:
    ctx = PublishContext(
        secrets=SecretSources(),
        state=StateDir(tmp_path / "state"),
        clock=lambda: datetime(2027, 10, 25, 12, 0, tzinfo=UTC),
    )
    publisher = MastodonPublisher("masto", SETTINGS, ctx)
    publisher._last_headers = {header_name: date_header} if date_header else {}
    assert publisher._created_before_this_request(created) is existed
