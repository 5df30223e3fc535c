"""What readers see of a quote post and a video post amplifier published, through the real Bluesky AppView: the
quoted post embedded in the quote's view (``app.bsky.embed.record#view``) and counted as quoted; the video's view."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import Video
from amplifier.plan.quotes import resolve_quote

from .servers.appview import AppViewNetwork
from .test_appview_engagement import AT, Campaign, bluesky_parts, campaign, planned, ref  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.appview]


def test_a_quote_post_shows_the_quoted_post_and_counts_as_a_quote(
    appview: AppViewNetwork,
    campaign: Campaign,  # noqa: F811
) -> None:
    # A text of its own: the AppView counts quotes by the quoted record's CID, and an identical record of
    # another test's account would share it.
    call = campaign.publish(planned("av-call", bluesky_parts("Join us at the rally on 1 November.")))
    quoting = adapt(Content(texts=("1 day left.",), lang="en", quote=True), Target("bluesky", created_at=AT))
    post = replace(planned("av-quote", quoting.parts), quote="av-call")
    result = campaign.publish(resolve_quote(post, ref(call)))
    reader = appview.create_account("reader")

    (view,) = appview.get_posts([ref(result)["uri"]], viewer=reader)
    assert view["embed"]["$type"] == "app.bsky.embed.record#view"
    quoted = view["embed"]["record"]
    assert quoted["uri"] == ref(call)["uri"]
    assert quoted["value"]["text"] == "Join us at the rally on 1 November."
    (reading,) = campaign.read(call)
    assert reading.quotes == 1


def test_readers_get_the_video_view_of_a_video_post(
    appview: AppViewNetwork,
    campaign: Campaign,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The AppView turns the record's ``app.bsky.embed.video`` into its view (the blob's CID, a playlist URL, the
    alt text and aspect ratio). Whether the playlist plays needs Bluesky's video service, which is not here."""
    media = Path(__file__).parent.parent / "media"
    video = Video(str(media / "clip.mp4"), "Marchers with banners", "video/mp4", 64, 36, 2.0, 3783)
    parts = adapt(Content(texts=("Watch",), lang="en", video=video), Target("bluesky", created_at=AT)).parts
    result = campaign.publish(planned("av-video", parts))
    reader = appview.create_account("viewer")
    (view,) = appview.get_posts([ref(result)["uri"]], viewer=reader)
    embed = view["embed"]
    assert embed["$type"] == "app.bsky.embed.video#view"
    assert embed["alt"] == "Marchers with banners"
    assert embed["aspectRatio"] == {"width": 64, "height": 36}
    assert embed["cid"] == view["record"]["embed"]["video"]["ref"]["$link"]
    assert embed["playlist"].startswith("http")
