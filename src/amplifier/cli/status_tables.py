"""The tables of ``status`` and ``history`` (rich), from the JSON data of :mod:`amplifier.cli.status`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from amplifier.delivery.ledger import Row
from amplifier.delivery.ledger.followups import Retraction

NODE_SILENT = (
    60.0  # seconds: a node beats every quarter of its lease (1.5 s by default); silent longer: gone?
)
NODE_ACCOUNTS_SHOWN = 6  # account names listed per node; status --format json lists all of them


def short_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO time of the JSON (already in the campaign's zone) as a table shows it: ``2027-10-30 10:00``."""
    if not iso:
        return ""
    try:
        return dt.datetime.fromisoformat(iso).strftime(fmt)
    except ValueError:
        return iso


def heartbeat_text(heartbeat: Mapping[str, Any] | None, now_iso: str) -> str:
    """The daemon's last heartbeat in the zone of ``now_iso`` (the campaign's) with its age:
    ``2027-10-30 10:04 (40 s ago)``; it was the raw UTC time with microseconds."""
    if not heartbeat:
        return "none"
    try:
        at = dt.datetime.fromisoformat(str(heartbeat["written_at"]))
        now = dt.datetime.fromisoformat(now_iso)
    except (KeyError, ValueError):
        return str(heartbeat.get("written_at"))
    age = (now - at).total_seconds()
    when = at.astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M")
    return f"{when} ({age_text(age)} ago)" if age >= 0 else f"{when} (ahead of now)"


def utc_note(why: str) -> str:
    """The one line ``status`` and ``history`` print when the campaign files cannot be loaded."""
    return f"times in UTC: the campaign files cannot be loaded ({why})"


def status_tables(data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.render import console

    out = console()
    if data.get("campaign_error"):
        out.print(Text(utc_note(data["campaign_error"]), style="bold"), soft_wrap=True)
    if data.get("planned_only"):
        out.print(Text("the daemon has not run yet: the next posts of the campaign files", style="bold"))
    if data["paused"]:
        out.print(Text(f"PAUSED: {data['paused']}", style="bold red"))
    out.print(Text(f"heartbeat: {heartbeat_text(data['heartbeat'], data['now'])}"))
    # Fits an 80-column terminal: the platform under the account, short headers, times without seconds.
    accounts = Table(title="accounts")
    accounts.add_column("account", no_wrap=True)
    accounts.add_column("state", overflow="fold")
    for column in ("sent", "planned", "failed"):
        accounts.add_column(column, justify="right", no_wrap=True)
    accounts.add_column("last sent", no_wrap=True)
    accounts.add_column("next due", no_wrap=True)
    for account, info in data["accounts"].items():
        state = Text("paused", style="bold red") if info["paused"] else Text("active")
        name = Text(account)
        if info["platform"]:
            name.append(f"\n{info['platform']}", style="dim")
        accounts.add_row(
            name,
            state,
            str(info["counts"]["published"]),
            str(info["counts"]["planned"]),
            str(info["counts"]["failed"]),
            short_time(info["last_published_at"], "%m-%d %H:%M"),
            short_time(info["next_due_at"], "%m-%d %H:%M"),
        )
    out.print(accounts)
    for account, info in data["accounts"].items():  # why, under the table, where a long reason has room
        if info["paused"]:
            out.print(
                Text(f"{account} paused by {info['paused_by']}: ", style="bold red") + Text(info["paused"])
            )
    for title, key in (
        ("next due", "next"),
        ("held (account paused)", "held"),
        ("last published", "last_published"),
        ("failed / expired", "failures"),
    ):
        if key == "held" and not data[key]:
            continue
        out.print(posts_table(title, data[key]))
    if data.get("retractions"):
        table = Table(title="retracted (deleted on the platforms)")
        for column in ("id", "at", "by", "state", "reason"):
            table.add_column(column, overflow="fold")
        for item in data["retractions"]:
            shown = "retracted" if item["state"] == "done" else str(item["state"])
            table.add_row(item["id"], short_time(item["at"]), item["by"], shown, Text(item["reason"] or ""))
        out.print(table)
    if data["actions"]:
        out.print(_actions_table(data["actions"]))
    if data.get("nodes"):
        out.print(nodes_table(data["nodes"], data["now"]))


def posts_table(title: str, rows: list[dict[str, Any]]) -> Any:
    """Posts as ``status`` lists them, readable at 80 columns: the due time, the id (the account is in it) and
    the state; under the id, dimmed, what else there is to say: the link, the reason, or a retry time other
    than the due time. (An id folded over three lines, beside an account and a raw ``next_attempt_at``, could
    not be read or copied.)"""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    table.add_column("due", no_wrap=True)
    table.add_column("id", overflow="fold")
    table.add_column("state", no_wrap=True)
    for row in rows:
        cell = Text(row["id"])
        retry = row.get("next_attempt_at")
        notes = [str(row.get("url") or row.get("reason") or "")]
        if row["state"] in ("planned", "claimed") and retry and retry != row["due_at"]:
            notes.append(f"retry at {short_time(retry)}")
        for note in filter(None, notes):
            cell.append(f"\n{note}", style="dim")
        table.add_row(short_time(row["due_at"]), cell, row["state"])
    return table


def age_text(seconds: float) -> str:
    """A heartbeat's age in a few characters: ``4 s``, ``12 min``, ``3 h``, ``2 d``."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def holdings_text(holds: Iterable[str]) -> str:
    """What a node holds (``account masto``, ``2 claim(s)``, ...) in one short text: the accounts counted and
    the first few named, then the rest (claims)."""
    accounts: list[str] = []
    other: list[str] = []
    for hold in holds:
        if hold.startswith("account "):
            accounts.append(hold.removeprefix("account "))
        else:
            other.append(hold)
    parts: list[str] = []
    if accounts:
        shown = ", ".join(accounts[:NODE_ACCOUNTS_SHOWN])
        more = len(accounts) - NODE_ACCOUNTS_SHOWN
        word = "account" if len(accounts) == 1 else "accounts"
        parts.append(f"{len(accounts)} {word}: {shown}" + (f" +{more} more" if more > 0 else ""))
    parts += other
    return "; ".join(parts) or "nothing"


def nodes_table(nodes: list[dict[str, Any]], now_iso: str) -> Any:
    """The nodes sharing the ledger: each one's heartbeat age, whether it leads planning, what it holds.

    Fits 80 columns: the node's host on one line, its pid and token's nonce dim below; a node silent for
    longer than :data:`NODE_SILENT` is marked (its leases have passed: its accounts are free for the others)."""
    from rich.table import Table
    from rich.text import Text

    now = dt.datetime.fromisoformat(now_iso)
    table = Table(title="nodes")
    table.add_column("node", overflow="fold", max_width=28)
    table.add_column("beat", no_wrap=True)
    table.add_column("plan", no_wrap=True)
    table.add_column("holds", overflow="fold")
    for node in nodes:
        token = str(node["node"])
        nonce = token.split(":", 2)[2] if token.count(":") >= 2 else ""
        if node.get("pid") is not None:
            name = Text(str(node["host"]))
            name.append(f"\npid {node['pid']} {nonce}".rstrip(), style="dim")
        else:
            name = Text(token)
        beat_at = dt.datetime.fromisoformat(node["beat_at"]) if node.get("beat_at") else None
        age = (now - beat_at).total_seconds() if beat_at is not None else None
        if age is None:
            beat = Text("never", style="bold red")
        elif age > NODE_SILENT:
            beat = Text(f"{age_text(age)} ago\nsilent", style="bold red")
        else:
            beat = Text(f"{age_text(age)} ago")
        role = Text("leads", style="bold") if node.get("leader") else Text("follows", style="dim")
        table.add_row(name, beat, role, Text(holdings_text(node.get("holds") or ())))
    return table


def _actions_table(actions: list[dict[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="operators' actions")
    table.add_column("at", no_wrap=True)
    for column in ("by", "action", "target", "reason"):
        table.add_column(column, overflow="fold")
    for action in actions:
        table.add_row(
            short_time(action["at"]),
            action["by"],
            action["action"],
            Text(action["target"]),
            Text(str(action["reason"] or "")),
        )
    return table


def history_table(
    rows: Iterable[Row],
    actions: list[dict[str, Any]],
    zone: ZoneInfo,
    start: dt.datetime,
    end: dt.datetime,
    retracted: Mapping[str, Retraction] | None = None,
) -> None:
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.render import console
    from amplifier.daemon.status import row_json

    table = Table(title=f"history {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}")
    table.add_column("due", no_wrap=True)  # as in `status`: 2027-10-30 10:00, in the campaign's zone
    table.add_column("id", overflow="fold")  # the account is in it; under it, the links or the reason
    table.add_column("state", no_wrap=True)
    for row in rows:
        item = row_json(row, zone)
        style = "green" if item["state"] == "published" else "red"
        urls = "\n".join(str(r["url"] or r["uri"] or "") for r in item["results"] if r["url"] or r["uri"])
        state, note = item["state"], urls or str(item["reason"] or "")
        retraction = (retracted or {}).get(row.id)
        if retraction is not None:
            state = "retracted" if retraction.state == "done" else f"retracting ({retraction.state})"
            style = "yellow"
            when = retraction.at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            note = f"by {retraction.by} at {when}" + (f": {retraction.reason}" if retraction.reason else "")
        cell = Text(item["id"])
        if note:
            cell.append(f"\n{note}", style="dim")
        table.add_row(short_time(item["due_at"]), cell, Text(state, style=style))
    console().print(table)
    if actions:
        console().print(_actions_table(actions))
