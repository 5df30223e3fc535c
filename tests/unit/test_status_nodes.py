"""``status``'s table of the nodes sharing a ledger: heartbeat age, planning lead, holdings, at 80 columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from amplifier.cli.status_tables import age_text, holdings_text
from tests.conftest import ROOT, Result

RunCli = Callable[..., Result]
NOW = dt.datetime(2027, 10, 30, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0 s"),
        (0, "0 s"),
        (4.4, "4 s"),
        (119, "119 s"),
        (120, "2 min"),
        (7199, "120 min"),
        (7200, "2 h"),
        (2 * 86400, "2 d"),
    ],
)
def test_age_text(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


@pytest.mark.parametrize(
    ("holds", "text"),
    [
        ([], "nothing"),
        (["1 claim(s)"], "1 claim(s)"),
        (["account masto"], "1 account: masto"),
        (["account a", "account b", "2 claim(s)"], "2 accounts: a, b; 2 claim(s)"),
        ([f"account a{n:02d}" for n in range(9)], "9 accounts: a00, a01, a02, a03, a04, a05 +3 more"),
    ],
)
def test_holdings_text(holds: list[str], text: str) -> None:
    assert holdings_text(holds) == text


def test_status_table_shows_each_node_at_80_columns(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three nodes: the leader with 34 accounts and its claims, a follower, and one silent for minutes."""
    from amplifier.delivery.ledger import open_ledger

    monkeypatch.setenv("COLUMNS", "80")
    state = tmp_path / "state"
    leader = "amplifier-node-1.example.internal:4711:daemon-1a2b3c4d"
    follower = "node-2:815:daemon-99aa88bb"
    gone = "node-3:4242:daemon-00ff00ff"
    with open_ledger(state, NOW) as ledger:
        accounts = [f"account acct-{n:03d}" for n in range(34)]
        ledger.beat_node(leader, NOW - dt.timedelta(seconds=2), leader=True, holds=[*accounts, "3 claim(s)"])
        ledger.beat_node(follower, NOW - dt.timedelta(seconds=1), leader=False, holds=[])
        ledger.beat_node(gone, NOW - dt.timedelta(minutes=7), leader=False, holds=["account acct-999"])
    result = run_cli(
        "--config", str(ROOT / "schedule.yaml"), "--state", str(state), "status", "--now", NOW.isoformat()
    )
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    at = next(n for n, line in enumerate(lines) if line.strip() == "nodes")
    blocks = node_blocks(lines[at:])
    assert [block[0].replace(" ", "") for block in blocks] == [  # a long host name is folded
        "node-2pid815daemon-99aa88bb",  # the latest beat first
        "amplifier-node-1.example.internalpid4711daemon-1a2b3c4d",
        "node-3pid4242daemon-00ff00ff",
    ]
    assert blocks[0][1:] == ["1 s ago", "follows", "nothing"]
    assert blocks[1][1:] == [
        "2 s ago",
        "leads",
        "34 accounts: acct-000, acct-001, acct-002, acct-003, acct-004, acct-005 +28 more; 3 claim(s)",
    ]
    assert blocks[2][1:] == ["7 min ago silent", "follows", "1 account: acct-999"]


def node_blocks(lines: list[str]) -> list[list[str]]:
    """The rows of the nodes table, each node's cells with their lines joined by spaces."""
    blocks: list[list[list[str]]] = []
    for line in lines:
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[2]:  # a node's first line has its role
            blocks.append([[cell] for cell in cells])
        else:
            for column, cell in zip(blocks[-1], cells, strict=True):
                column.append(cell)
    return [[" ".join(part for part in column if part) for column in block] for block in blocks]


def test_status_without_nodes_has_no_nodes_table(run_cli: RunCli, tmp_path: Path) -> None:
    from amplifier.delivery.ledger import open_ledger

    with open_ledger(tmp_path / "state", NOW):
        pass
    result = run_cli(
        "--config",
        str(ROOT / "schedule.yaml"),
        "--state",
        str(tmp_path / "state"),
        "status",
        "--now",
        NOW.isoformat(),
    )
    assert result.code == 0, result.err
    assert "nodes" not in [line.strip() for line in result.out.splitlines()]
