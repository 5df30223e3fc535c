"""HTTP requests per published post, counted by the loopback servers themselves.

Starts the reference Bluesky PDS and mastodon-mock (the same servers as the integration tests, from
``tests/integration/servers``), publishes with amplifier's publishers and prints, per platform and kind of
post, the requests the server received:

* text: one status / one record;
* image: one image with alt text;
* thread: three parts replying to each other.

Each kind is measured twice: "cold" is the first post of a fresh process with an empty state folder (login,
instance limits), "steady" is the mean over further posts once the session and limits are cached. The
target: 1 request per text post on each platform in the steady state. Exit code 1 when it is missed.

Run from the repository root: ``.venv/bin/python bench/bench_requests.py`` (the first run on a machine
installs the PDS into the test cache, about 3 minutes).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from PIL import Image as PILImage  # noqa: E402
from tests.integration.servers import MastodonServer, PdsServer, ensure_installed  # noqa: E402

from amplifier.campaign.models import BlueskyAccount, MastodonAccount  # noqa: E402
from amplifier.plan.post import Image, Part, PlannedPost  # noqa: E402
from amplifier.publish import PublishContext, Publisher, create_publisher  # noqa: E402
from amplifier.publish.secrets import SecretSources  # noqa: E402
from amplifier.publish.sessions import StateDir  # noqa: E402

STEADY_POSTS = 5
SLOT = datetime(2027, 11, 1, 9, 0, tzinfo=UTC)


def _post(
    platform: str, post_id: str, n: int, parts: list[dict[str, Any]], images: tuple[Image, ...] = ()
) -> PlannedPost:
    built = tuple(
        Part(
            text=str(p.get("status") or p.get("text")),
            length=0,
            limit=0,
            payload=p,
            images=images if i == 0 else (),
        )
        for i, p in enumerate(parts)
    )
    return PlannedPost(
        id=post_id,
        at=SLOT + timedelta(minutes=n),
        rule="bench",
        account=platform,
        platform=platform,  # type: ignore[arg-type]
        lang="en",
        parts=built,
        message_set="bench",
        variant=0,
    )


def mastodon_post(kind: str, n: int, image: Path) -> PlannedPost:
    base = {"visibility": "public", "language": "en"}
    pid = f"bench:masto:{kind}:{n}"
    if kind == "text":
        return _post("mastodon", pid, n, [{**base, "status": f"Text post {n} #bench"}])
    if kind == "image":
        img = (Image(path=str(image), alt="A test square", mime="image/png", width=64, height=64),)
        payload = {**base, "status": f"Image post {n}", "media_ids": [{"$upload": str(image)}]}
        return _post("mastodon", pid, n, [payload], img)
    parts = [{**base, "status": f"Thread {n} part 1/3"}]
    for i in (1, 2):
        parts.append(
            {**base, "status": f"Thread {n} part {i + 1}/3", "in_reply_to_id": {"$ref": f"part:{i - 1}"}}
        )
    return _post("mastodon", pid, n, parts)


def bluesky_post(kind: str, n: int, image: Path) -> PlannedPost:
    created = (SLOT + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    base = {"$type": "app.bsky.feed.post", "createdAt": created, "langs": ["en"]}
    pid = f"bench:bsky:{kind}:{n}"
    if kind == "text":
        return _post("bluesky", pid, n, [{**base, "text": f"Text post {n}"}])
    if kind == "image":
        img = (Image(path=str(image), alt="A test square", mime="image/png", width=64, height=64),)
        embed = {
            "$type": "app.bsky.embed.images",
            "images": [{"alt": "A test square", "image": {"$upload": str(image)}}],
        }
        return _post("bluesky", pid, n, [{**base, "text": f"Image post {n}", "embed": embed}], img)
    parts = [{**base, "text": f"Thread {n} part 1/3"}]
    for i in (1, 2):
        reply = {"root": {"$ref": "part:0"}, "parent": {"$ref": f"part:{i - 1}"}}
        parts.append({**base, "text": f"Thread {n} part {i + 1}/3", "reply": reply})
    return _post("bluesky", pid, n, parts)


def measure(
    make_publisher: Callable[[], Publisher],
    make_post: Callable[[str, int], PlannedPost],
    count: Callable[[], int],
    reset: Callable[[], None],
) -> dict[str, tuple[int, float]]:
    """{kind: (cold requests, steady mean requests)}; each kind starts from a fresh state folder."""
    results: dict[str, tuple[int, float]] = {}
    for k, kind in enumerate(("text", "image", "thread")):
        publisher = make_publisher()
        try:
            reset()
            publisher.publish(make_post(kind, 1000 * k))
            cold = count()
            reset()
            for n in range(1, STEADY_POSTS + 1):
                publisher.publish(make_post(kind, 1000 * k + n))
            results[kind] = (cold, count() / STEADY_POSTS)
        finally:
            publisher.close()
    return results


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="amplifier-bench-") as tmp_name:
        tmp = Path(tmp_name)
        image = tmp / "square.png"
        PILImage.new("RGB", (64, 64), "teal").save(image, "PNG")

        masto_server = MastodonServer.start(work_dir=tmp / "mastodon")
        pds = PdsServer.start(install_dir=ensure_installed(print), work_dir=tmp / "pds")
        try:
            masto_account = masto_server.create_account(masto_server.unique_username("bench"))
            bsky_account = pds.create_account("bench")
            os.environ["AMP_BENCH_TOKEN"] = masto_account.access_token
            os.environ["AMP_BENCH_PASSWORD"] = bsky_account.password
            masto = MastodonAccount(
                platform="mastodon", instance=masto_server.url, token_env="AMP_BENCH_TOKEN"
            )  # type: ignore[arg-type]
            bsky = BlueskyAccount(
                platform="bluesky",
                handle=bsky_account.handle,
                service=pds.url,  # type: ignore[arg-type]
                password_env="AMP_BENCH_PASSWORD",
            )
            counter = iter(range(1_000_000))

            def context() -> PublishContext:
                return PublishContext(secrets=SecretSources(), state=StateDir(tmp / f"state-{next(counter)}"))

            rows = {
                "mastodon": measure(
                    lambda: create_publisher("mastodon", masto, context()),
                    lambda kind, n: mastodon_post(kind, n, image),
                    masto_server.request_count,
                    masto_server.reset_request_counts,
                ),
                "bluesky": measure(
                    lambda: create_publisher("bluesky", bsky, context()),
                    lambda kind, n: bluesky_post(kind, n, image),
                    pds.request_count,
                    pds.reset_request_counts,
                ),
            }
        finally:
            pds.stop()
            masto_server.stop()

    print("HTTP requests per published post (counted by the server)")
    steady_label = f"steady (mean of {STEADY_POSTS})"
    print(f"{'platform':<10} {'post':<8} {'cold (1st post, empty state)':>30} {steady_label:>20}")
    for platform, results in rows.items():
        for kind, (cold, steady) in results.items():
            print(f"{platform:<10} {kind:<8} {cold:>30} {steady:>20.1f}")
    ok = all(rows[p]["text"][1] == 1 for p in rows)
    print(f"steady state text post = 1 request on each platform: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
