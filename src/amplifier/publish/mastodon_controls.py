"""Mastodon quote controls and the account's automation flag.

* **Feature detection.** ``quote_approval_policy`` (public / followers / nobody) exists from Mastodon 4.5: an
  instance supports it when ``GET /api/v2/instance`` says ``api_versions.mastodon`` >= 7 (Mastodon 4.5's) or a
  ``version`` of 4.5 or later. On an older instance the parameter is left out of the status (a warning in the
  log and in ``amplifier accounts``), never a failed post.
* **Quote posts** (``quoted_status_id``, a message set's ``quote:``) came with the same Mastodon 4.5: on an older
  instance the post goes out without the quote, with the same warning.
* **Replies.** Mastodon has no control over who may reply: a ``replies`` setting applies to Bluesky only.
* **Changing a published post** (``amplifier gate``): ``PUT /api/v1/statuses/:id/interaction_policy``.
* **Disclosure.** The account's ``bot`` flag (``verify_credentials``), set with ``update_credentials(bot=True)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amplifier.errors import AmplifierError, Problem

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.publish.mastodon import MastodonPublisher
    from amplifier.publish.sessions import StateDir

QUOTE_POLICY_API_VERSION = 7  # api_versions.mastodon of Mastodon 4.5
QUOTE_POLICY_VERSION = (4, 5)
QUOTE_KEY = "quote_approval_policy"
QUOTED_KEY = "quoted_status_id"
NO_QUOTE_CONTROLS = (
    "the instance runs a Mastodon older than 4.5, which has no quote controls and no quote posts: `quotes` and "
    "`quote` settings are left out of this account's posts"
)


def api_version(data: Mapping[str, Any]) -> int:
    """``api_versions.mastodon`` of an instance answer (0 when absent)."""
    versions = data.get("api_versions")
    value = versions.get("mastodon") if isinstance(versions, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def supports_quote_policy(limits: Mapping[str, Any]) -> bool:
    """Whether the instance (its parsed limits) takes ``quote_approval_policy``."""
    if int(limits.get("api_version") or 0) >= QUOTE_POLICY_API_VERSION:
        return True
    return _version(str(limits.get("version") or "")) >= QUOTE_POLICY_VERSION


def without_unsupported(params: dict[str, Any], limits: Mapping[str, Any]) -> bool:
    """Drop ``quote_approval_policy`` and ``quoted_status_id`` (quote posts, Mastodon 4.5 too) from ``params`` when
    the instance cannot take them: the post goes out without them. Whether anything was dropped."""
    present = [key for key in (QUOTE_KEY, QUOTED_KEY) if key in params]
    if not present or supports_quote_policy(limits):
        return False
    for key in present:
        del params[key]
    return True


def set_quote_policy(pub: MastodonPublisher, status_ids: Sequence[str], policy: str) -> list[str]:
    """Set the quote policy of each status (``PUT /api/v1/statuses/:id/interaction_policy``); what was done."""
    from amplifier.publish.base import PermanentError

    if not supports_quote_policy(pub.limits()):
        raise PermanentError(f"{pub.account}: {NO_QUOTE_CONTROLS.split(':')[0]}; nothing was changed")
    api = pub.api()
    done = []
    for status_id in status_ids:
        answer = pub._answer(
            pub._call(api.status_update_quote_approval_policy, status_id, policy, write=True), "id"
        )
        done.append(f"status {status_id}: quotes {answer.get(QUOTE_KEY) or policy}")
    return done


def automation(pub: MastodonPublisher) -> bool:
    api = pub.api()
    me = pub._answer(pub._call(api.account_verify_credentials), "id")
    return bool(me.get("bot"))


def disclose_automation(pub: MastodonPublisher) -> bool:
    """Set the account's ``bot`` flag; whether it was changed."""
    if automation(pub):
        return False
    api = pub.api()
    pub._answer(pub._call(api.account_update_credentials, bot=True, write=True), "id")
    return True


def quote_control_warnings(campaign: Campaign, state: StateDir) -> list[Problem]:
    """``validate``'s warnings: a Mastodon account whose posts ask for quote controls, on an instance last seen
    (``amplifier accounts``, ``send`` or the daemon read its ``/api/v2/instance`` within a day) running a Mastodon
    without them. No request is sent: an instance not seen lately is not warned about."""
    from amplifier.campaign.models import MastodonAccount, rule_accounts
    from amplifier.publish.sessions import LimitsCache

    schedule = campaign.schedule
    asking = {
        account_id
        for rule in schedule.rules.values()
        if (message_set := campaign.message_sets.get(rule.messages)) is not None
        and (message_set.quotes is not None or message_set.quote is not None)
        for account_id in rule_accounts(schedule, rule)
    }
    cache = LimitsCache(state)
    warnings = []
    for account_id, account in schedule.accounts.items():
        if not isinstance(account, MastodonAccount) or (account_id not in asking and account.quotes is None):
            continue
        try:
            limits = cache.get(f"mastodon-{str(account.instance).rstrip('/')}")
        except (OSError, ValueError, AmplifierError):
            continue
        if limits is not None and not supports_quote_policy(limits):
            version = limits.get("version") or "unknown"
            warnings.append(
                campaign.schedule_problem(
                    ("accounts", account_id),
                    f"{account_id}: its instance runs Mastodon {version}, older than 4.5, which has no quote "
                    "controls and no quote posts: `quotes` and `quote` settings are left out of its posts (they are "
                    "posted all the same)",
                )
            )
    return warnings
