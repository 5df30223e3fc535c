"""What an alert is, and how a batch of them becomes one short message.

An :class:`Alert` is one fact (a post failed, an account was paused...) with the event it belongs to (the names of
``notify.destinations.*.events`` in ``schedule.yaml``), its subject (an account, a post id) and a short cause.
:func:`compose` groups a batch by event, server and cause, so a server outage on six accounts is one line
("6 accounts paused on bsky.social: ...") in one message, each line saying what to do. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

TEST = "test"
MAX_IDS = 8  # subjects named on a line; the rest are counted
MAX_PROBLEMS = 20  # reload problems quoted in one message
MAX_CAUSE = 200
_TIMESTAMP = re.compile(
    r"\s*(?:at |since )?\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d| UTC)?"
)


@dataclass(frozen=True)
class Alert:
    """One fact to tell an operator. ``key`` is what the repeat interval compares: the same key is not sent
    again to a destination within ``notify.repeat``."""

    event: str
    subject: str  # an account id, a post id, or "daemon" / "campaign"
    cause: str = ""  # short and shared by alerts that happened for the same reason (grouped on one line)
    account: str | None = None
    server: str | None = None  # the host the account talks to, when the alert is about a server's answer
    secret: str | None = None  # the NAME of the variable to fix (never its value)
    lines: tuple[str, ...] = field(default=())  # reload_rejected: the file:line:col problems

    @property
    def key(self) -> str:
        base = f"{self.event}:{self.subject}"
        if self.event in ("account_paused", "daemon_stuck", "daemon_stopped", "reload_rejected"):
            digest = hashlib.sha256("\n".join((self.cause, *self.lines)).encode()).hexdigest()[:12]
            return f"{base}:{digest}"
        return base


def short_cause(reason: str, account: str | None = None) -> str:
    """The first clause of an error text, without the ``account:`` prefix the publishers put in front."""
    text = " ".join(reason.split())
    text = _TIMESTAMP.sub("", text)  # so that the same cause at different moments groups
    if account and text.startswith(f"{account}:"):
        text = text[len(account) + 1 :].strip()
    text = re.split(r"; |\. ", text, maxsplit=1)[0]
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 1] + "…"


# ---------------------------------------------------------------------------------- one constructor per event


def post_failed(post_id: str, account: str, reason: str, server: str | None = None) -> Alert:
    """A post was marked failed (a permanent error, or a transient one after the last attempt)."""
    return Alert("post_failed", post_id, short_cause(reason, account), account=account, server=server)


def post_expired(post_id: str, account: str, reason: str) -> Alert:
    """A post's window passed before it could go out."""
    return Alert("post_expired", post_id, short_cause(reason, account), account=account)


def account_paused(account: str, reason: str, server: str | None = None, secret: str | None = None) -> Alert:
    """An account was paused because its credentials are missing or were rejected."""
    return Alert("account_paused", account, short_cause(reason, account), account, server, secret)


def account_resumed(account: str, reason: str = "") -> Alert:
    """A paused account posts again (its secret changed, or ``amplifier resume --account``)."""
    return Alert("account_resumed", account, short_cause(reason, account), account=account)


def outcome_unknown(post_id: str, account: str, since: datetime, server: str | None = None) -> Alert:
    """A post's outcome is still unknown after its check was due (amplifier cannot learn whether it went out)."""
    cause = f"unknown since {since:%Y-%m-%d %H:%M} UTC"
    return Alert("outcome_unknown", post_id, cause, account=account, server=server)


def reload_rejected(problems: Sequence[str]) -> Alert:
    """The campaign files changed and the new version is invalid: the daemon keeps the last valid one."""
    return Alert("reload_rejected", "campaign", f"{len(problems)} problem(s)", lines=tuple(problems))


def daemon_stopped(reason: str) -> Alert:
    """The daemon stopped (a signal, or an error it cannot go on after)."""
    return Alert("daemon_stopped", "daemon", short_cause(reason))


def daemon_stuck(reason: str) -> Alert:
    """The daemon is alive but not posting (a pass that does not end, a due post long overdue)."""
    return Alert("daemon_stuck", "daemon", short_cause(reason))


def test_alert() -> Alert:
    return Alert(TEST, "test", "test message")


# ------------------------------------------------------------------------------------------------ messages


@dataclass(frozen=True)
class Message:
    """One message to one destination: a title (the mail subject, the chat's bold line) and a body."""

    title: str
    body: str


_NOUN = {
    "post_failed": ("post failed", "posts failed"),
    "post_expired": ("post expired", "posts expired"),
    "account_paused": ("account paused", "accounts paused"),
    "account_resumed": ("account resumed", "accounts resumed"),
    "outcome_unknown": ("post with an unknown outcome", "posts with an unknown outcome"),
    "reload_rejected": ("campaign edit rejected", "campaign edits rejected"),
    "daemon_stopped": ("daemon stopped", "daemon stopped"),
    "daemon_stuck": ("daemon stuck", "daemon stuck"),
    TEST: ("test message", "test message"),
}

_ORDER = list(_NOUN)

_TODO = {
    "post_failed": "They are not retried: fix what the reason says (the text, an image, the account's "
    "permissions); `amplifier history` lists them.",
    "post_expired": "Their time passed before they could go out (amplifier was down, the account paused or the "
    "server unreachable). See `amplifier status`; a rule's `missed:` setting allows posting late.",
    "account_paused": "Fix {secrets}; an account resumes by itself when its secret changes "
    "(or run `amplifier resume --account ID`). Its posts wait meanwhile.",
    "account_resumed": "Nothing to do: their posts go out again.",
    "outcome_unknown": "amplifier cannot yet tell whether they went out; it keeps asking the server and never "
    "posts them twice. Check that the server is reachable; `amplifier status` lists them.",
    "reload_rejected": "The daemon keeps running the last valid campaign. Fix these lines and save again:",
    "daemon_stopped": "Nothing is posted until it runs again (`systemctl start amplifier`, "
    "`docker compose up -d`).",
    "daemon_stuck": "It is running but not posting: read its log and `amplifier status --check`; restart it "
    "if it does not recover.",
    TEST: "This is a test from `amplifier notify --test`: alerts reach this destination. Nothing to do.",
}


def _names(items: Iterable[str]) -> str:
    unique = list(dict.fromkeys(items))
    shown = ", ".join(unique[:MAX_IDS])
    more = len(unique) - MAX_IDS
    return f"{shown} and {more} more" if more > 0 else shown


SINGLE = ("daemon_stopped", "daemon_stuck", TEST)  # no count
NOT_NAMED = ("daemon", "campaign", "test")  # subjects not worth naming


def _rank(event: str) -> int:
    return _ORDER.index(event) if event in _ORDER else len(_ORDER)


def _head(event: str, count: int) -> str:
    """``3 accounts paused``, ``1 post failed``, ``daemon stopped``."""
    singular, plural = _NOUN.get(event, (event, event))
    if event in SINGLE:
        return singular
    return f"{count} {singular if count == 1 else plural}"


def _causes(alerts: Sequence[Alert]) -> str:
    causes = Counter(alert.cause for alert in alerts if alert.cause)
    if len(causes) == 1:
        return next(iter(causes))
    text = "; ".join(f"{cause} ({n}×)" for cause, n in causes.most_common(3))
    return text + (f"; and {len(causes) - 3} other reasons" if len(causes) > 3 else "")


def _line(event: str, server: str | None, alerts: Sequence[Alert]) -> list[str]:
    """The line of one (event, server) group: what happened, to whom, why, and what to do."""
    subjects = [alert.subject for alert in alerts if alert.subject not in NOT_NAMED]
    names = _names(subjects)
    accounts = sorted({alert.account for alert in alerts if alert.account and alert.account != alert.subject})
    if accounts:
        names += f"; account{'s' if len(accounts) > 1 else ''} {_names(accounts)}"
    text = _head(event, len({alert.subject for alert in alerts}))
    text = text[0].upper() + text[1:]
    text += (f" on {server}" if server else "") + (f" ({names})" if names else "")
    cause = _causes(alerts) if event != TEST else ""
    text += f": {cause}." if cause else "."
    secrets = sorted({alert.secret for alert in alerts if alert.secret})
    fix = f"the secret{'s' if len(secrets) > 1 else ''} {', '.join(secrets)}" if secrets else "the secret"
    todo = _TODO.get(event, "").format(secrets=fix)
    lines = [f"{text} {todo}".strip()]
    if event == "reload_rejected":
        problems = [problem for alert in alerts for problem in alert.lines]
        lines += [f"  {problem}" for problem in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            lines.append(
                f"  ... and {len(problems) - MAX_PROBLEMS} more (`amplifier validate` shows them all)"
            )
    return lines


def compose(alerts: Sequence[Alert], campaign: str) -> Message:
    """One message for a batch of alerts: one line per (event, server), the worst events first; the title counts
    them."""
    groups: dict[tuple[str, str], list[Alert]] = {}
    for alert in alerts:
        groups.setdefault((alert.event, alert.server or ""), []).append(alert)
    body: list[str] = []
    counts: Counter[str] = Counter()
    for (event, server), members in sorted(groups.items(), key=lambda item: (_rank(item[0][0]), item[0][1])):
        body += _line(event, server or None, members)
        counts[event] += len({alert.subject for alert in members})
    summary = [
        _head(event, count) for event, count in sorted(counts.items(), key=lambda item: _rank(item[0]))
    ]
    return Message(title=f"amplifier · {campaign}: {', '.join(summary)}", body="\n".join(body))
