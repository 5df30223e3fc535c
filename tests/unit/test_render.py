"""Rendering for people: the width of tables in a pipe."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplifier.cli.render import PIPE_WIDTH, console, pipe_width


@pytest.mark.parametrize(
    ("columns", "width"),
    [
        ("200", 200),
        (" 90 ", 90),
        (None, PIPE_WIDTH),
        ("", PIPE_WIDTH),
        ("wide", PIPE_WIDTH),
        ("0", PIPE_WIDTH),  # rich would print nothing at all in zero columns
        ("-5", PIPE_WIDTH),
        ("12.5", PIPE_WIDTH),
        ("٢٠٠", PIPE_WIDTH),  # decimal digits of another script are not a width
    ],
)
def test_pipe_width(columns: str | None, width: int) -> None:
    assert pipe_width(columns) == width


@given(st.text(max_size=8))
def test_pipe_width_is_always_positive(columns: str) -> None:
    assert pipe_width(columns) > 0


@pytest.mark.parametrize(("columns", "width"), [("wide", PIPE_WIDTH), ("0", PIPE_WIDTH), ("99", 99)])
def test_console_in_a_pipe(monkeypatch: pytest.MonkeyPatch, columns: str, width: int) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    out = io.StringIO()
    shown = console(out)
    assert shown.width == width
    shown.print("a text")
    assert out.getvalue() == "a text\n"


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("count", [0, 1, 3, 1100])
def test_streamed_json_is_the_document_json_dumps_writes(
    monkeypatch: pytest.MonkeyPatch, indent: int | None, count: int
) -> None:
    """Byte for byte what one json.dumps of the whole document gives, across batch boundaries, shared parts too."""
    import datetime as dt
    import json

    from amplifier.cli import render
    from amplifier.plan.post import Followup, Image, Part, PlannedPost

    monkeypatch.setattr(render, "JSON_BATCH", 7)
    shared = (Part('Hoch die "Fahnen"\nweiter', 20, 500, {"status": "x", "visibility": "public"}),)
    own = (
        Part(
            "ڕۆژ",
            3,
            300,
            {"$type": "app.bsky.feed.post", "text": "ڕۆژ"},
            (Image("/i.png", "alt", "image/png", 2, 1),),
        ),
    )
    at = dt.datetime(2027, 11, 1, 9, tzinfo=dt.UTC)
    posts = [
        PlannedPost(
            f"r:a{i}:k",
            at,
            "r",
            f"a{i}",
            "mastodon",
            "ku",
            shared if i % 3 else own,
            "m",
            i % 2,
            None,
            ("too long",) if i == 1 else (),
            quote=f"r:a{i - 1}:k" if i % 5 == 1 else None,
            followups=(Followup("boost", "b", delay=dt.timedelta(minutes=10)),) if i % 4 == 0 else (),
        )
        for i in range(count)
    ]
    extra = {"campaign": 'Bench "c"', "window": {"from": "2027-11-01T00:00:00+00:00", "to": "x"}}
    out = io.StringIO()
    assert render.write_posts_json(out, iter(posts), indent=indent, **extra) == count
    expected = (
        json.dumps(render.posts_json(posts, **extra), ensure_ascii=False, indent=indent, default=str) + "\n"
    )
    assert out.getvalue() == expected
    assert list(json.loads(out.getvalue())) == ["version", "campaign", "window", "posts"]


@given(
    texts=st.lists(st.text(max_size=12), min_size=6, max_size=6),
    event=st.one_of(st.none(), st.text(max_size=8)),
    variant=st.integers(min_value=0, max_value=10**6),
    warnings=st.lists(st.text(max_size=8), max_size=2),
    followups=st.lists(st.sampled_from(["boost", "pin", "delete"]), max_size=3),
    quote=st.one_of(st.none(), st.text(max_size=8)),
)
def test_a_post_written_directly_is_what_json_dumps_writes(
    texts: list[str],
    event: str | None,
    variant: int,
    warnings: list[str],
    followups: list[str],
    quote: str | None,
) -> None:
    """Quotes, backslashes, control characters, lone surrogates, any script: the same bytes as json.dumps."""
    import datetime as dt
    import io
    import json

    from amplifier.cli.render import _encode, post_json_text, posts_json, write_posts_json
    from amplifier.plan.post import Followup, Part, PlannedPost

    post_id, rule, account, lang, message_set, text = texts
    parts = (Part(text, len(text), 500, {"status": text, "n": 1.5, "at": dt.date(2027, 1, 2)}),)
    at = dt.datetime(2027, 11, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    planned = tuple(  # follow-ups were left out of the piped (compact) JSON of `preview`
        Followup(kind, account, at + dt.timedelta(days=1)) if kind == "delete" else Followup(kind, account)  # type: ignore[arg-type]
        for kind in followups
    )
    post = PlannedPost(
        post_id,
        at,
        rule,
        account,
        "bluesky",
        lang,
        parts,
        message_set,
        variant,
        event,
        tuple(warnings),
        quote=quote,
        followups=planned,
    )
    encoded = json.dumps([part.to_json() for part in parts], ensure_ascii=False, default=str)
    assert _encode([part.to_json() for part in parts]) == encoded
    assert post_json_text(post, encoded) == json.dumps(post.to_json(), ensure_ascii=False, default=str)
    out = io.StringIO()  # the writer's inlined copy of post_json_text, with and without the optional keys
    plain = PlannedPost(post_id, at, rule, account, "bluesky", lang, parts, message_set, variant, event)
    write_posts_json(out, [post, plain, post])
    document = posts_json([post, plain, post])
    assert out.getvalue() == json.dumps(document, ensure_ascii=False, default=str) + "\n"
