"""The tables of ``status`` and ``history`` (rich), from the JSON data of :mod:`amplifier.cli.status`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from amplifier.delivery.ledger import Row


def status_tables(data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.render import console

    out = console()
    if data.get("planned_only"):
        out.print(Text("the daemon has not run yet: the next posts of the campaign files", style="bold"))
    if data["paused"]:
        out.print(Text(f"PAUSED: {data['paused']}", style="bold red"))
    heartbeat = data["heartbeat"]
    out.print(Text(f"heartbeat: {heartbeat['written_at'] if heartbeat else 'none'}"))
    accounts = Table(title="accounts")
    for column in (
        "account",
        "platform",
        "state",
        "published",
        "planned",
        "failed",
        "last published",
        "next due",
    ):
        accounts.add_column(column, overflow="fold")
    for account, info in data["accounts"].items():
        state = (
            Text(f"paused by {info['paused_by']}: {info['paused']}", style="bold red")
            if info["paused"]
            else Text("active")
        )
        accounts.add_row(
            account,
            str(info["platform"] or ""),
            state,
            str(info["counts"]["published"]),
            str(info["counts"]["planned"]),
            str(info["counts"]["failed"]),
            info["last_published_at"] or "",
            info["next_due_at"] or "",
        )
    out.print(accounts)
    for title, key, detail in (
        ("next due", "next", "next_attempt_at"),
        ("held (account paused)", "held", "reason"),
        ("last published", "last_published", "url"),
        ("failed / expired", "failures", "reason"),
    ):
        if key == "held" and not data[key]:
            continue
        table = Table(title=title)
        for column in ("id", "account", "due", "state", detail):
            table.add_column(column, overflow="fold")
        for row in data[key]:
            table.add_row(
                row["id"], row["account"], row["due_at"], row["state"], Text(str(row[detail] or ""))
            )
        out.print(table)
    if data["actions"]:
        out.print(_actions_table(data["actions"]))


def _actions_table(actions: list[dict[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="operators' actions")
    for column in ("at", "by", "action", "target", "reason"):
        table.add_column(column, overflow="fold")
    for action in actions:
        table.add_row(
            action["at"],
            action["by"],
            action["action"],
            Text(action["target"]),
            Text(str(action["reason"] or "")),
        )
    return table


def history_table(
    rows: Iterable[Row], actions: list[dict[str, Any]], zone: ZoneInfo, start: dt.datetime, end: dt.datetime
) -> None:
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.render import console
    from amplifier.daemon.status import row_json

    table = Table(title=f"history {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}")
    for column in ("due", "id", "account", "state", "url / reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        item = row_json(row, zone)
        style = "green" if item["state"] == "published" else "red"
        urls = " ".join(str(r["url"] or r["uri"] or "") for r in item["results"]).strip()
        table.add_row(
            item["due_at"],
            item["id"],
            item["account"],
            Text(item["state"], style=style),
            Text(urls or str(item["reason"] or "")),
        )
    console().print(table)
    if actions:
        console().print(_actions_table(actions))
