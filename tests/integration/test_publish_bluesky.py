"""The Bluesky publisher against the reference PDS over HTTP on loopback; records are read back."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from amplifier.campaign.models import BlueskyAccount
from amplifier.plan.post import Image, Part, PlannedPost
from amplifier.publish import AuthError, PublishContext, create_publisher
from amplifier.publish.bluesky import COLLECTION, BlueskyPublisher, record_key
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import Account, PdsServer

pytestmark = pytest.mark.integration

PASSWORD_ENV = "AMP_IT_BSKY_PASSWORD"
AT = datetime(2027, 10, 1, 10, 0, tzinfo=UTC)
CREATED = "2027-10-01T10:00:00.000Z"


def span(text: str, piece: str) -> dict[str, int]:
    start = len(text[: text.index(piece)].encode("utf-8"))
    return {"byteStart": start, "byteEnd": start + len(piece.encode("utf-8"))}


def record(text: str, **extra: Any) -> dict[str, Any]:
    return {"$type": COLLECTION, "text": text, "createdAt": CREATED, "langs": ["en"], **extra}


def part(payload: dict[str, Any], images: tuple[Image, ...] = ()) -> Part:
    return Part(text=payload["text"], length=len(payload["text"]), limit=300, payload=payload, images=images)


def planned(post_id: str, *parts: Part) -> PlannedPost:
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account="bsky",
        platform="bluesky",
        lang="en",
        parts=parts,
        message_set="m",
        variant=0,
    )


def forged_jwt(did: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    claims = {"scope": "com.atproto.access", "sub": did, "iat": 1_900_000_000, "exp": 4_000_000_000}
    return f"{header}.{b64(json.dumps(claims).encode())}.{b64(os.urandom(32))}"


def thread(*texts: str) -> tuple[Part, ...]:
    parts = []
    for i, text in enumerate(texts):
        extra = {"reply": {"root": {"$ref": "part:0"}, "parent": {"$ref": f"part:{i - 1}"}}} if i else {}
        parts.append(part(record(text, **extra)))
    return tuple(parts)


class Setup:
    def __init__(self, pds: PdsServer, account: Account, tmp_path: Path) -> None:
        self.pds = pds
        self.account = account
        self.tmp_path = tmp_path
        self.settings = BlueskyAccount(
            platform="bluesky",
            handle=account.handle,
            service=pds.url,  # type: ignore[arg-type]
            password_env=PASSWORD_ENV,
        )
        self.ctx = PublishContext(
            secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=10.0, card_timeout=2.0
        )

        self.opened: list[BlueskyPublisher] = []

    def publisher(self) -> BlueskyPublisher:
        publisher = create_publisher("bsky", self.settings, self.ctx)
        assert isinstance(publisher, BlueskyPublisher)
        self.opened.append(publisher)
        return publisher

    def close(self) -> None:
        for publisher in self.opened:
            publisher.close()

    def get(self, rkey: str) -> dict[str, Any]:
        found = self.pds.get_record(self.account.did, COLLECTION, rkey)
        assert found is not None, rkey
        return found

    def records(self) -> list[dict[str, Any]]:
        return self.pds.list_records(self.account.did, COLLECTION)


@pytest.fixture
def setup(pds: PdsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    account = pds.create_account("amp")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    setup = Setup(pds, account, tmp_path)
    yield setup
    setup.close()


def test_text_with_facets_and_langs_reads_back_byte_exact(setup: Setup) -> None:
    text = "Noch 3 Tage bis zur Wahl in Rojava! Mehr: https://example.org/wählen #Rojava #Демократия"
    facets = [
        {
            "index": span(text, "https://example.org/wählen"),
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.org/w%C3%A4hlen"}],
        },
        {
            "index": span(text, "#Rojava"),
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Rojava"}],
        },
        {
            "index": span(text, "#Демократия"),
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Демократия"}],
        },
    ]
    post = planned("bs-text", part(record(text, langs=["de", "ku"], facets=facets)))
    result = setup.publisher().publish(post)

    rkey = record_key(post.id, 0, post.at)
    stored = setup.get(rkey)
    assert result.parts[0].id == rkey
    assert result.parts[0].uri == stored["uri"] == f"at://{setup.account.did}/{COLLECTION}/{rkey}"
    assert result.parts[0].cid == stored["cid"]
    assert stored["value"]["text"] == text
    assert stored["value"]["langs"] == ["de", "ku"]
    assert stored["value"]["createdAt"] == CREATED
    assert stored["value"]["facets"] == facets
    raw = text.encode("utf-8")
    tag = stored["value"]["facets"][2]["index"]
    assert raw[tag["byteStart"] : tag["byteEnd"]].decode("utf-8") == "#Демократия"


def test_mention_is_resolved_to_a_did(setup: Setup) -> None:
    friend = setup.pds.create_account("friend")
    text = f"Thanks @{friend.handle}!"
    facets = [
        {
            "index": span(text, f"@{friend.handle}"),
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": {"$handle": friend.handle}}],
        }
    ]
    setup.publisher().publish(planned("bs-mention", part(record(text, facets=facets))))

    (stored,) = setup.records()
    assert stored["value"]["facets"][0]["features"][0]["did"] == friend.did


def test_images_with_alt_text_aspect_ratio_and_reencoding(setup: Setup) -> None:
    small = setup.tmp_path / "small.png"
    PILImage.new("RGB", (60, 30), "green").save(small, "PNG")
    big = setup.tmp_path / "big.png"
    PILImage.effect_noise((1100, 1000), 100).convert("RGB").save(big, "PNG")
    assert big.stat().st_size > 1_000_000
    images = (
        Image(path=str(small), alt="A green band", mime="image/png", width=60, height=30),
        Image(path=str(big), alt="Noise", mime="image/png", width=1100, height=1000),
    )
    embed = {
        "$type": "app.bsky.embed.images",
        "images": [
            {
                "alt": "A green band",
                "image": {"$upload": str(small)},
                "aspectRatio": {"width": 60, "height": 30},
            },
            {"alt": "Noise", "image": {"$upload": str(big)}},
        ],
    }
    setup.publisher().publish(planned("bs-images", part(record("Pictures", embed=embed), images)))

    (stored,) = setup.records()
    got = stored["value"]["embed"]["images"]
    assert [i["alt"] for i in got] == ["A green band", "Noise"]
    assert got[0]["aspectRatio"] == {"width": 60, "height": 30}
    assert got[1]["aspectRatio"] == {"width": 1100, "height": 1000}  # filled in from the image
    assert got[0]["image"]["mimeType"] == "image/png"
    assert got[1]["image"]["mimeType"] == "image/jpeg"  # re-encoded to fit
    assert got[1]["image"]["size"] <= 1_000_000


def test_three_part_thread_has_root_and_parent_refs(setup: Setup) -> None:
    result = setup.publisher().publish(planned("bs-thread", *thread("one 1/3", "two 2/3", "three 3/3")))

    refs = [{"uri": p.uri, "cid": p.cid} for p in result.parts]
    values = [setup.get(p.id)["value"] for p in result.parts]
    assert "reply" not in values[0]
    assert values[1]["reply"] == {"root": refs[0], "parent": refs[0]}
    assert values[2]["reply"] == {"root": refs[0], "parent": refs[1]}
    keys = [p.id for p in result.parts]
    assert keys == sorted(keys)  # the parts sort in thread order


def test_same_post_twice_leaves_one_record(setup: Setup) -> None:
    post = planned("bs-twice", part(record("Only once")))
    first = setup.publisher().publish(post)
    second = setup.publisher().publish(post)

    assert len(setup.records()) == 1
    assert second.parts[0].uri == first.parts[0].uri
    assert second.parts[0].cid == first.parts[0].cid


def test_lookup_and_resume_find_the_existing_record_without_writing(setup: Setup) -> None:
    post = planned("bs-resume", *thread("a", "b"))
    publisher = setup.publisher()
    assert publisher.lookup(post) == {}
    first = publisher.publish(post)

    setup.pds.reset_request_counts()
    found = publisher.lookup(post)
    assert [p.uri for p in found.values()] == [p.uri for p in first.parts]
    assert all(p.existed for p in found.values())
    again = publisher.publish(post, resume={})
    assert again.already_published
    assert setup.pds.request_count("com.atproto.repo.putRecord") == 0


def test_session_is_reused_across_posts_and_processes(setup: Setup) -> None:
    setup.pds.reset_request_counts()
    publisher = setup.publisher()
    publisher.publish(planned("bs-s0", part(record("zero"))))
    assert setup.pds.request_count("com.atproto.server.createSession") == 1
    publisher.close()

    setup.pds.reset_request_counts()
    later = setup.publisher()  # a new process: the session comes from the state folder
    for n in range(1, 6):
        later.publish(planned(f"bs-s{n}", part(record(f"post {n}"))))
    assert setup.pds.request_count("com.atproto.server.createSession") == 0
    assert setup.pds.request_count("com.atproto.repo.putRecord") == 5
    assert setup.pds.request_count() == 5  # one request per text post

    session_file = next((setup.tmp_path / "state" / "sessions").iterdir())
    assert session_file.stat().st_mode & 0o777 == 0o600
    assert (setup.tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_dead_saved_session_logs_in_once_again(setup: Setup) -> None:
    setup.publisher().check()
    session_dir = setup.tmp_path / "state" / "sessions"
    session_file = next(session_dir.iterdir())
    handle, did, _access, _refresh, endpoint = session_file.read_text().split(":::")
    forged = forged_jwt(did)  # well formed, unexpired, but not signed by this PDS
    session_file.write_text(":::".join([handle, did, forged, forged, endpoint]))

    setup.pds.reset_request_counts()
    setup.publisher().publish(planned("bs-relogin", part(record("after a dead session"))))
    assert setup.pds.request_count("com.atproto.server.createSession") == 1
    assert len(setup.records()) == 1


def test_expiring_access_token_is_refreshed_and_saved(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from atproto_client.client.methods_mixin.time import TimeMethodsMixin

    setup.publisher().check()
    session_file = next((setup.tmp_path / "state" / "sessions").iterdir())
    before = session_file.read_text()
    later = datetime.now(UTC) + timedelta(hours=3)  # the 2-hour access token looks expired to the SDK
    monkeypatch.setattr(TimeMethodsMixin, "get_current_time", lambda self: later)

    setup.pds.reset_request_counts()
    setup.publisher().publish(planned("bs-refresh", part(record("after a refresh"))))
    assert setup.pds.request_count("com.atproto.server.refreshSession") == 1
    assert setup.pds.request_count("com.atproto.server.createSession") == 0
    after = session_file.read_text()
    assert after != before  # the refreshed tokens were saved
    assert after.split(":::")[1] == setup.account.did


def test_wrong_password_is_tried_once_then_refused(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-123")
    setup.pds.reset_request_counts()
    with pytest.raises(AuthError, match="rejected the login") as first:
        setup.publisher().publish(planned("bs-wrong", part(record("no"))))
    with pytest.raises(AuthError, match="not trying to log in again before"):
        setup.publisher().check()
    assert setup.pds.request_count("com.atproto.server.createSession") == 1
    assert "wrong-password-123" not in str(first.value)


def test_check_reports_the_did_and_handle(setup: Setup) -> None:
    info = setup.publisher().check()
    assert info.ok
    assert info.id == setup.account.did
    assert info.handle == setup.account.handle
    assert info.limits["max_graphemes"] == 300


# ----------------------------------------------------------------------------------------- link cards

PAGE = b"""<!doctype html><html><head><title>Fallback</title>
<meta property="og:title" content="Vote in Rojava">
<meta property="og:description" content="Everything about the election.">
<meta property="og:image" content="/card.png">
</head><body>hi</body></html>"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A local web page with Open Graph tags and its image (no internet)."""
    image = tmp_path / "card.png"
    PILImage.new("RGB", (120, 63), "navy").save(image, "PNG")
    files = {"/page": ("text/html; charset=utf-8", PAGE), "/card.png": ("image/png", image.read_bytes())}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in files:
                self.send_error(404)
                return
            kind, body = files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread_ = threading.Thread(target=server.serve_forever, daemon=True)
    thread_.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_link_card_from_open_graph_tags(setup: Setup, site: str) -> None:
    url = f"{site}/page"
    embed = {"$type": "app.bsky.embed.external", "external": {"$card": url}}
    setup.publisher().publish(planned("bs-card", part(record(f"Read {url}", embed=embed))))

    (stored,) = setup.records()
    external = stored["value"]["embed"]["external"]
    assert external["uri"] == url
    assert external["title"] == "Vote in Rojava"
    assert external["description"] == "Everything about the election."
    assert external["thumb"]["mimeType"] == "image/png"


def test_link_card_failure_posts_without_card_and_logs(
    setup: Setup, site: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{site}/missing"
    embed = {"$type": "app.bsky.embed.external", "external": {"$card": url}}
    with caplog.at_level(logging.WARNING, logger="amplifier.publish.bluesky_records"):
        setup.publisher().publish(planned("bs-nocard", part(record(f"Read {url}", embed=embed))))

    (stored,) = setup.records()
    assert "embed" not in stored["value"]
    assert any("without a link card" in r.getMessage() and "404" in r.getMessage() for r in caplog.records)
