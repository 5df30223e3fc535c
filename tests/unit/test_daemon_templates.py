"""A hostile template saved while the daemon runs: the reload ends in bounded time, the last valid campaign runs on."""

from __future__ import annotations

import time
from collections.abc import Callable

from amplifier.delivery.ledger import State
from tests.unit.test_daemon import MESSAGES, Harness, at, make, once

__all__ = ["make"]  # the fixture


def test_a_template_that_never_ends_cannot_wedge_a_reload(make: Callable[..., Harness]) -> None:
    harness = make(once("a", "2027-10-20T09:00") + once("b", "2027-10-20T10:00"), at("2027-10-20T08:00"))
    messages = harness.folder / "messages" / "hello.yaml"
    hostile = (
        "{% for a in range(99999) %}{% for b in range(99999) %}{{ 'x' * 99999 }}{% endfor %}{% endfor %}"
    )
    messages.write_text(MESSAGES.replace("Hello from the campaign, {{ account.id }}!", hostile))
    started = time.monotonic()
    assert harness.daemon.watch(at("2027-10-20T08:10"))
    assert time.monotonic() - started < 10
    problems = [e["problem"] for e in harness.log.of("reload invalid") if "problem" in e]
    assert len(problems) == 1
    assert "hello.yaml:" in problems[0]
    assert "template of message set 'hello', variant 1, en: " in problems[0]
    harness.run_at(at("2027-10-20T09:00"))  # the last valid campaign posts on
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED
    assert "Hello from the campaign" in harness.daemon.posts["a:masto:2027-10-20T09:00"].parts[0].text
