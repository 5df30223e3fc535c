"""Shared fixtures: small campaigns written to a temporary folder, and the CLI run in-process."""

from __future__ import annotations

import contextlib
import io
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.servers.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent

BASE_SCHEDULE = """\
campaign:
  name: Test campaign
  timezone: Europe/Berlin
  language: en
events:
  kobane-day:
    name: {en: World Kobane Day, ku: Roja Cîhanî ya Kobanê, ckb: ڕۆژی جیهانیی کۆبانێ}
    date: 2027-11-01
    url: https://riseup4rojava.org/take-action/
accounts:
  masto:
    platform: mastodon
    instance: https://mastodon.example
    token_env: TEST_MASTO_TOKEN
  sky:
    platform: bluesky
    handle: campaign.bsky.social
    password_env: TEST_SKY_PASSWORD
rules:
  countdown:
    kind: countdown
    event: kobane-day
    days_before: [3, 2, 1]
    at: "10:00"
    messages: countdown
"""

BASE_MESSAGES = """\
sets:
  countdown:
    hashtags: [Riseup4Rojava]
    variants:
      - text:
          en: "{{ days_left | plural(one='# day', other='# days') }} until {{ event.name }}."
      - text:
          en: "{{ event.name }} is in {{ days_left }} days. Join an action: {{ event.url }}"
"""


def write_campaign(root: Path, schedule: str = BASE_SCHEDULE, messages: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "schedule.yaml").write_text(textwrap.dedent(schedule), encoding="utf-8")
    folder = root / "messages"
    folder.mkdir(exist_ok=True)
    for name, text in (messages if messages is not None else {"main.yaml": BASE_MESSAGES}).items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "schedule.yaml"


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Callable[..., Path]:
    """``campaign_dir(schedule=..., messages={...})`` writes a campaign and returns its schedule.yaml."""

    def make(schedule: str = BASE_SCHEDULE, messages: dict[str, str] | None = None) -> Path:
        return write_campaign(tmp_path / "campaign", schedule, messages)

    return make


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``amplifier ARGS`` in-process as a user would, returning exit code, stdout and stderr."""

    def run(*args: str, cwd: Path | None = None) -> Result:
        from amplifier.cli.main import main

        if cwd is not None:
            monkeypatch.chdir(cwd)
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
        return Result(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on loopback (session scope); ``postgres.create_database(name)`` gives a URL."""
    server = PostgresServer.start(tmp_path_factory.mktemp("postgresql"))
    try:
        yield server
    finally:
        server.stop()
