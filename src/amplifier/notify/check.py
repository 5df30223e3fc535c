"""Checking the campaign's alert destinations for the ``notify`` command: is each URL set, and (``send_test``) did a
test message get through. The command renders the reports; a URL is a secret and is never in them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.errors import UsageError


@dataclass(frozen=True)
class DestinationReport:
    """One destination as ``notify`` shows it."""

    name: str
    url_env: str
    events: tuple[str, ...]
    digest: str | None
    url_set: bool
    tested: bool
    ok: bool
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url_env": self.url_env,
            "url_set": self.url_set,
            "events": list(self.events),
            "digest": self.digest,
            "tested": self.tested,
            "ok": self.ok,
            "error": self.error,
        }


def check_destinations(campaign: Campaign, *, send_test: bool) -> tuple[list[DestinationReport], bool]:
    """Each destination of ``campaign`` (its URL set or not; with ``send_test`` whether a test message got
    through), and whether the dead man's switch URL is set."""
    from amplifier.notify.heartbeat import DeadMansSwitch
    from amplifier.notify.notifier import Notifier
    from amplifier.publish.secrets import SecretSources

    settings = campaign.schedule.notify
    if settings is None:
        raise UsageError(
            f"{campaign.config_display}: no `notify:` section: add one to send alerts (see docs/alerts.md)"
        )
    sources = SecretSources.for_campaign(campaign.root)
    notifier = Notifier.from_campaign(campaign, sources, None, log=lambda *_a, **_k: None)
    missing = {item.name: item.reason for item in notifier.unusable}
    results = {delivery.destination: delivery for delivery in notifier.test()} if send_test else {}
    reports = []
    for name, spec in settings.destinations.items():
        delivery = results.get(name)
        error = missing.get(name) or (delivery.error if delivery else None)
        reports.append(
            DestinationReport(
                name=name,
                url_env=spec.url_env,
                events=tuple(spec.events),
                digest=spec.digest.strftime("%H:%M") if spec.digest else None,
                url_set=name not in missing,
                tested=delivery is not None,
                ok=name not in missing and (delivery is None or delivery.ok),
                error=error,
            )
        )
    return reports, DeadMansSwitch.from_sources(sources).active
