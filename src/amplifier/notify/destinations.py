"""The ``notify:`` section of ``schedule.yaml`` made usable: each destination with its URL read from its secret.

A destination's URL holds a token, so ``schedule.yaml`` only names the variable (``url_env``); the value is read
like an account's secret (:class:`~amplifier.publish.secrets.SecretSources`: the environment, ``.env``, the
secrets folder). A destination whose URL cannot be read is a problem to report, not a reason to stop posting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import NotifySettings
from amplifier.errors import CredentialsError
from amplifier.publish.secrets import SecretSources


@dataclass(frozen=True)
class Destination:
    """One place alerts go. ``url`` is a secret: never print it (``repr`` leaves it out)."""

    name: str
    url: str = field(repr=False)
    url_env: str
    events: frozenset[str]
    digest: dt.time | None = None

    def wants(self, event: str) -> bool:
        return event in self.events


@dataclass(frozen=True)
class Unusable:
    """A destination whose URL could not be read; ``reason`` names the variable, never a value."""

    name: str
    url_env: str
    reason: str


def resolve(
    settings: NotifySettings | None, sources: SecretSources
) -> tuple[list[Destination], list[Unusable]]:
    """The destinations whose URL is set, and those whose URL is missing (with the reason)."""
    found: list[Destination] = []
    missing: list[Unusable] = []
    if settings is None:
        return found, missing
    for name, spec in settings.destinations.items():
        try:
            url = sources.get(spec.url_env).get_secret_value().strip()
        except CredentialsError as exc:
            missing.append(Unusable(name, spec.url_env, str(exc)))
            continue
        found.append(Destination(name, url, spec.url_env, frozenset(spec.events), spec.digest))
    return found, missing


def known_secrets(campaign: Campaign, sources: SecretSources, extra: Iterable[str] = ()) -> list[str]:
    """Every secret value amplifier can see for this campaign (the accounts' tokens and passwords that are set),
    plus ``extra``: the texts an alert must never contain."""
    values = [value for value in extra if value]
    for settings in campaign.schedule.accounts.values():
        name = settings.token_env if settings.platform == "mastodon" else settings.password_env
        try:
            values.append(sources.get(name).get_secret_value())
        except CredentialsError:
            continue
    return values
