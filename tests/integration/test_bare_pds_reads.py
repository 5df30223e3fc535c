"""Reads a bare PDS cannot answer (no AppView behind it; a record in no repository of it), against the reference
PDS on loopback: the error says what was read and why, never "the server refused the post"."""

from __future__ import annotations

import pytest

from amplifier.publish import PermanentError
from amplifier.publish.engagement import PublishedPart

from .test_publish_bluesky import Setup, part, planned, record
from .test_publish_bluesky import setup as setup  # the fixture

pytestmark = pytest.mark.integration


def test_engagement_read_back_from_a_pds_without_an_appview_says_so(setup: Setup) -> None:
    publisher = setup.publisher()
    result = publisher.publish(planned("bare-read", part(record("Read me back"))))
    parts = [PublishedPart(result.post_id, p.index, p.id, p.uri) for p in result.parts]
    with pytest.raises(PermanentError) as caught:
        publisher.read_engagement(parts)
    said = str(caught.value)
    assert said.startswith(
        f"reading the counts of 1 post(s) (app.bsky.feed.getPosts) failed: {setup.pds.url} does not serve"
        " this query (a PDS without an AppView behind it?)"
    ), said
    assert "No service configured for app.bsky.feed.getPosts" in said
    assert "the post" not in said


def test_a_record_in_no_repository_of_the_pds_is_named_as_not_found(setup: Setup) -> None:
    publisher = setup.publisher()
    uri = "at://did:plc:nobodyhereatallxxxxxxxxx/app.bsky.feed.post/3kaaaaaaaaaaa"
    with pytest.raises(PermanentError) as caught:
        publisher._record_gone(uri)
    said = str(caught.value)
    assert said.startswith(f"reading the record at {uri} failed: {setup.pds.url} has no such record"), said
    assert "the post" not in said
