"""Publishers: one small interface (:class:`~amplifier.publish.base.Publisher`), one implementation per
platform, and the dry run as one more.

:func:`create_publisher` picks the implementation from the registry by the account's platform (or
``"dry-run"``). The platform modules import their SDK (Mastodon.py, atproto) only when a publisher is made,
so commands that never publish do not pay for them. ``engagement`` is what a publisher's ``read_engagement``
answers (the counts read back). ``followups`` is what a publisher's ``followups()`` writer does on a published
post (boost, pin, delete: ``mastodon_followups``, ``bluesky_followups``). ``faults`` classifies what the HTTP stack
raises. Also the
credentials (``secrets``) and the state folder
(``sessions``: Bluesky sessions, instance limits, the login guard).

May import: ``plan``, ``campaign``, ``platforms``, ``errors``, ``clock``, ``redact``. Never ``delivery``, ``daemon``
or ``cli``.
"""

from __future__ import annotations

from collections.abc import Callable

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.errors import UsageError
from amplifier.publish.base import (
    AccountInfo,
    AuthError,
    OutcomeUnknownError,
    PartResult,
    PermanentError,
    PublishContext,
    Publisher,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.engagement import Engagement, PublishedPart

DRY_RUN = "dry-run"

Factory = Callable[[str, MastodonAccount | BlueskyAccount, PublishContext], Publisher]


def _mastodon(account: str, settings: MastodonAccount | BlueskyAccount, ctx: PublishContext) -> Publisher:
    from amplifier.publish.mastodon import MastodonPublisher

    if not isinstance(settings, MastodonAccount):
        raise UsageError(f"{account}: not a Mastodon account")
    return MastodonPublisher(account, settings, ctx)


def _bluesky(account: str, settings: MastodonAccount | BlueskyAccount, ctx: PublishContext) -> Publisher:
    from amplifier.publish.bluesky import BlueskyPublisher

    if not isinstance(settings, BlueskyAccount):
        raise UsageError(f"{account}: not a Bluesky account")
    return BlueskyPublisher(account, settings, ctx)


def _dry_run(account: str, settings: MastodonAccount | BlueskyAccount, ctx: PublishContext) -> Publisher:
    from amplifier.publish.dryrun import DryRunPublisher

    return DryRunPublisher(account, settings, ctx)


REGISTRY: dict[str, Factory] = {"mastodon": _mastodon, "bluesky": _bluesky, DRY_RUN: _dry_run}


def register(name: str, factory: Factory) -> None:
    """Add (or replace) the publisher for a platform name."""
    REGISTRY[name] = factory


def create_publisher(
    account: str, settings: MastodonAccount | BlueskyAccount, ctx: PublishContext, *, dry_run: bool = False
) -> Publisher:
    """The publisher for ``account``: its platform's, or the dry run."""
    name = DRY_RUN if dry_run else settings.platform
    factory = REGISTRY.get(name)
    if factory is None:
        known = ", ".join(sorted(REGISTRY))
        raise UsageError(f"{account}: no publisher for platform {name!r} (known: {known})")
    return factory(account, settings, ctx)


__all__ = [
    "DRY_RUN",
    "REGISTRY",
    "AccountInfo",
    "AuthError",
    "Engagement",
    "OutcomeUnknownError",
    "PartResult",
    "PermanentError",
    "PublishContext",
    "PublishError",
    "PublishResult",
    "PublishedPart",
    "Publisher",
    "RateLimitedError",
    "TransientError",
    "create_publisher",
    "register",
]
