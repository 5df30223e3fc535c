"""The publisher registry, the dry run, and that publishing stays out of the CLI's import path."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.errors import UsageError
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import REGISTRY, PublishContext, create_publisher, register
from amplifier.publish.dryrun import DryRunPublisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

MASTO = MastodonAccount(platform="mastodon", instance="https://masto.example", token_env="AMP_REG_TOKEN")  # type: ignore[arg-type]
BSKY = BlueskyAccount(platform="bluesky", handle="a.example.com", password_env="AMP_REG_PASSWORD")


@pytest.fixture
def ctx(tmp_path: Path) -> PublishContext:
    return PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"))


def post() -> PlannedPost:
    payload = {"status": "hi", "visibility": "public", "language": "en"}
    reply = {**payload, "status": "two", "in_reply_to_id": {"$ref": "part:0"}}
    return PlannedPost(
        id="r:masto:2027-11-01T10:00",
        at=datetime(2027, 11, 1, 9, tzinfo=UTC),
        rule="r",
        account="masto",
        platform="mastodon",
        lang="en",
        parts=(Part("hi", 2, 500, payload), Part("two", 3, 500, reply)),
        message_set="m",
        variant=0,
    )


@pytest.mark.parametrize(
    ("settings", "dry_run", "cls_name"),
    [
        (MASTO, False, "MastodonPublisher"),
        (BSKY, False, "BlueskyPublisher"),
        (MASTO, True, "DryRunPublisher"),
        (BSKY, True, "DryRunPublisher"),
    ],
)
def test_registry_picks_the_implementation(
    ctx: PublishContext, settings: MastodonAccount | BlueskyAccount, dry_run: bool, cls_name: str
) -> None:
    publisher = create_publisher("acct", settings, ctx, dry_run=dry_run)
    assert type(publisher).__name__ == cls_name
    assert publisher.account == "acct"
    publisher.close()


def test_registry_is_open_and_reports_unknown_names(
    ctx: PublishContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(REGISTRY, "mastodon", REGISTRY["dry-run"])
    assert isinstance(create_publisher("x", MASTO, ctx), DryRunPublisher)
    monkeypatch.delitem(REGISTRY, "bluesky")
    with pytest.raises(UsageError, match="no publisher for platform 'bluesky'"):
        create_publisher("x", BSKY, ctx)
    register("bluesky", REGISTRY["dry-run"])
    assert isinstance(create_publisher("x", BSKY, ctx), DryRunPublisher)


def test_dry_run_returns_the_payloads_without_network(ctx: PublishContext) -> None:
    planned = post()
    result = create_publisher("masto", MASTO, ctx, dry_run=True).publish(planned)
    assert result.dry_run
    assert [p.payload for p in result.parts] == [part.payload for part in planned.parts]
    assert result.to_json()["parts"][1]["payload"]["in_reply_to_id"] == {"$ref": "part:0"}
    assert not result.already_published


def test_dry_run_check_only_looks_for_the_secret(
    ctx: PublishContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = create_publisher("bsky", BSKY, ctx, dry_run=True)
    monkeypatch.delenv("AMP_REG_PASSWORD", raising=False)
    info = publisher.check()
    assert not info.ok
    assert info.error is not None
    assert "AMP_REG_PASSWORD" in info.error
    monkeypatch.setenv("AMP_REG_PASSWORD", "pw")
    assert create_publisher("bsky", BSKY, ctx, dry_run=True).check().ok


def test_publishing_modules_do_not_import_the_sdks_until_used() -> None:
    code = (
        "import sys, amplifier.publish, amplifier.cli.publish, amplifier.publish.dryrun;"
        "bad = [m for m in ('atproto', 'atproto_client', 'mastodon', 'apscheduler') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
