"""Videos on Mastodon: the instance's own limits (``configuration.media_attachments``), checked before an upload
and, for ``validate``, against the limits of an instance seen lately (no request is sent).

The upload itself is the media API's, as for images (``POST /api/v2/media``): a video answers 202 and is polled
(``GET /api/v1/media/:id``) until the server has processed it; a status cannot attach it before. Mastodon has no
captions: a video's caption files are not sent (``validate`` warns).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amplifier.campaign.videos import VideoInfo, platform_problems
from amplifier.errors import AmplifierError, Problem
from amplifier.plan.post import Part

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.publish.sessions import StateDir

LIMIT_KEYS = ("video_size_limit", "video_matrix_limit", "video_frame_rate_limit")


def instance_limits(media: Mapping[str, Any]) -> dict[str, int]:
    """The video limits an instance's ``configuration.media_attachments`` says (those it says)."""
    return {
        key: value
        for key in LIMIT_KEYS
        if isinstance(value := media.get(key), int) and not isinstance(value, bool) and value > 0
    }


def video_problems(info: VideoInfo, limits: Mapping[str, Any], shown: str) -> list[str]:
    def limit(key: str) -> int | None:
        value = limits.get(key)
        return value if isinstance(value, int) and value > 0 else None

    return platform_problems(
        info,
        "mastodon",
        shown,
        size_limit=limit("video_size_limit"),
        matrix_limit=limit("video_matrix_limit"),
        frame_rate_limit=limit("video_frame_rate_limit"),
    )


def check_video(part: Part, limits: Mapping[str, Any]) -> list[str]:
    """What the instance would refuse of the part's video (before anything is uploaded)."""
    video = part.video
    if video is None or video.size is None or not video.width or not video.height or video.seconds is None:
        return []  # not readable: the upload says what the server thinks
    name = Path(video.path).name
    problems = video_problems(
        VideoInfo(video.mime, video.size, video.seconds, video.width, video.height), limits, name
    )
    alt_limit = limits.get("description_limit")
    if isinstance(alt_limit, int) and len(video.alt) > alt_limit:
        problems.append(
            f"the alt text of {name} has {len(video.alt)} characters; the instance allows {alt_limit}"
        )
    return problems


def video_limit_warnings(campaign: Campaign, state: StateDir) -> list[Problem]:
    """``validate``'s warnings: a video over the limits of a Mastodon instance it goes to, as the instance said
    them when last seen (``amplifier accounts``, ``send`` or the daemon within a day)."""
    from amplifier.campaign.models import MastodonAccount, rule_accounts
    from amplifier.campaign.videos import VideoError, campaign_file, read_video
    from amplifier.publish.sessions import LimitsCache

    schedule = campaign.schedule
    cache = LimitsCache(state)
    warnings: list[Problem] = []
    for set_id, message_set in campaign.message_sets.items():
        if not message_set.videos:
            continue
        video = message_set.videos[0]
        try:
            info = read_video(campaign_file(campaign.root, video.path, "video"), video.path)
        except VideoError:
            continue  # an error of its own already
        instances = {
            str(account.instance).rstrip("/")
            for rule in schedule.rules.values()
            if rule.messages == set_id
            for account_id in rule_accounts(schedule, rule)
            if isinstance(account := schedule.accounts[account_id], MastodonAccount)
        }
        for instance in sorted(instances):
            try:
                limits = cache.get(f"mastodon-{instance}")
            except (OSError, ValueError, AmplifierError):
                continue
            if limits is None:
                continue
            for problem in video_problems(info, limits, video.path):
                warnings.append(
                    campaign.set_problem(
                        set_id, ("videos", 0, "path"), f"{problem} ({instance}, as last seen)"
                    )
                )
    return warnings
