"""The campaign's accounts as its publishers see them: the context they are made with (secrets, state folder,
base folder: :func:`publish_context`), the check of each account that ``amplifier accounts`` shows: do its
credentials work, who is it, which limits has its server, does it disclose automation (:func:`check_accounts`),
and what the servers' limits seen last say about the campaign, for ``validate`` (:func:`instance_warnings`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from amplifier.errors import AmplifierError, CredentialsError, Problem
from amplifier.publish import AccountInfo, PublishContext, Publisher, PublishError, create_publisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir, StateError, resolve_state_dir
from amplifier.redact import redact

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign


def publish_context(campaign: Campaign, state: Path | None) -> PublishContext:
    """Secrets, state folder and base folder for the campaign's publishers."""
    state_dir = resolve_state_dir(campaign.schedule_path, state)
    return PublishContext(
        secrets=SecretSources.for_campaign(campaign.root),
        state=StateDir(state_dir),
        base_dir=campaign.root,
    )


def instance_warnings(campaign: Campaign, state: Path | None) -> list[Problem]:
    """What the state folder's last look at the servers says (no request): quote controls or video limits an
    instance lacks. Nothing when there is no usable state folder (nothing seen yet)."""
    from amplifier.publish.mastodon_controls import quote_control_warnings
    from amplifier.publish.mastodon_video import video_limit_warnings

    try:
        folder = StateDir(resolve_state_dir(campaign.schedule_path, state))
        return [*quote_control_warnings(campaign, folder), *video_limit_warnings(campaign, folder)]
    except AmplifierError:
        return []


HIDDEN_AUTOMATION = {
    "mastodon": "does not disclose automation: its profile is not marked as a bot account. Run `amplifier "
    "accounts --fix`, or tick 'This is an automated account' in Preferences > Public profile",
    "bluesky": "does not disclose automation: its profile record has no `bot` self-label. Run `amplifier "
    "accounts --fix` (it adds the label to app.bsky.actor.profile/self and keeps the other fields)",
}


def check_accounts(campaign: Campaign, ctx: PublishContext, *, fix: bool = False) -> list[AccountInfo]:
    """Ask each account's server who it is, which limits it has and whether it discloses automation (with
    ``fix``: make it disclose it); a failure is a result, not an error."""
    results: list[AccountInfo] = []
    for account_id, settings in campaign.schedule.accounts.items():
        server = str(settings.instance if settings.platform == "mastodon" else settings.service)
        publisher: Publisher | None = None
        try:
            publisher = create_publisher(account_id, settings, ctx)
            info = publisher.check()
            if info.ok and info.bot is False and fix and isinstance(publisher, Discloses):
                publisher.disclose_automation()
                info = replace(info, bot=True)
            if info.ok and info.bot is False:
                info = replace(info, warnings=(*info.warnings, HIDDEN_AUTOMATION[info.platform]))
            results.append(info)
        except (PublishError, CredentialsError, StateError) as exc:
            results.append(
                AccountInfo(
                    account_id, settings.platform, ok=False, server=server, error=_reason(exc, account_id)
                )
            )
        finally:
            if publisher is not None:
                publisher.close()
    return results


@runtime_checkable
class Discloses(Protocol):
    """A publisher that can mark its account as automated."""

    def disclose_automation(self) -> bool: ...


def _reason(exc: BaseException, account_id: str) -> str:
    text = redact(str(exc))
    for prefix in (f"{account_id}: ", f"{account_id}:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text
