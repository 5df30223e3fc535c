"""``amplifier correct`` as a user runs it, against mastodon-mock: the status is edited (read back with its
history), the edit recorded in the ledger once, also when the process is killed between the request and the
ledger write; Bluesky says to retract and send again."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amplifier.delivery.ledger.sqlite import LEDGER_NAME, SqliteLedger
from amplifier.errors import ExitCode

from .servers import MastodonServer, PdsServer
from .test_cli_send import Campaign, campaign  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

MASTO = "hello:masto:2027-10-30T10:00"
BSKY = "hello:bsky:2027-10-30T10:00"


def edit_files(folder: Path) -> None:
    messages = folder / "messages" / "hello.yaml"
    messages.write_text(messages.read_text().replace("days until", "days left until"))


def history(server: MastodonServer, status_id: str, token: str) -> list[dict[str, object]]:
    import httpx

    response = httpx.get(
        f"{server.url}/api/v1/statuses/{status_id}/history", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    data: list[dict[str, object]] = response.json()
    return data


def test_correct_edits_once_through_a_kill_between_request_and_ledger_write(
    campaign: Campaign,  # noqa: F811
    mastodon_server: MastodonServer,
    pds: PdsServer,
) -> None:
    code, sent = campaign.json("send", MASTO, BSKY)
    assert code == ExitCode.OK, sent
    status_id = next(p for p in sent["posts"] if p["id"] == MASTO)["parts"][0]["id"]
    edit_files(campaign.folder)

    code, preview = campaign.json("correct", MASTO, "--dry-run")
    assert code == ExitCode.OK
    [part] = preview["corrections"][0]["parts"]
    assert part["outcome"] == "would edit"
    assert part["old_text"].startswith("2 days until The Day!")
    assert part["new_text"].startswith("2 days left until The Day!")
    assert len(history(mastodon_server, status_id, campaign.masto.access_token)) == 1  # not edited

    killed = campaign.run("correct", MASTO, env={**campaign.env, "AMPLIFIER_TEST_CRASH_AFTER_REQUEST": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(history(mastodon_server, status_id, campaign.masto.access_token)) == 2  # the edit went out
    with SqliteLedger.open(campaign.state / LEDGER_NAME, datetime.now(UTC)) as ledger:
        assert [edit.outcome for edit in ledger.edits(MASTO)] == ["pending"]

    code, after = campaign.json("correct", MASTO)
    assert code == ExitCode.OK
    assert after["corrections"][0]["parts"][0]["outcome"] == "edited before"
    assert len(history(mastodon_server, status_id, campaign.masto.access_token)) == 2  # no second edit
    status = mastodon_server.get_status(status_id, campaign.masto.access_token)
    assert status is not None
    assert "2 days left until The Day!" in str(status["content"])
    assert status["edited_at"]
    with SqliteLedger.open(campaign.state / LEDGER_NAME, datetime.now(UTC)) as ledger:
        [edit] = ledger.edits(MASTO)
    assert edit.outcome == "edited"
    assert edit.old_text.startswith("2 days until")
    assert edit.new_text.startswith("2 days left until")

    table = campaign.run("correct", MASTO)
    assert table.returncode == 0
    assert "unchanged" in table.stdout

    refused = campaign.run("correct", BSKY)
    assert refused.returncode == ExitCode.PUBLISH
    assert "Bluesky has no edits" in refused.stderr
    assert f"amplifier retract {BSKY}" in refused.stderr
