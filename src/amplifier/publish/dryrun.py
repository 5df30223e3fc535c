"""The dry run: one more publisher, which returns what would be sent and touches no network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.errors import CredentialsError
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import AccountInfo, PartResult, PublishContext, PublishResult
from amplifier.publish.engagement import Engagement, PublishedPart
from amplifier.publish.followups import Target, WriteKind, WriteOutcome


class DryRunPublisher:
    """Publishes nothing: each part's result carries its payload, placeholders and all."""

    platform = "dry-run"

    def __init__(self, account: str, settings: MastodonAccount | BlueskyAccount, ctx: PublishContext) -> None:
        self.account = account
        self.settings = settings
        self.ctx = ctx

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        done = dict(resume or {})
        parts = tuple(
            done.get(index) or PartResult(index=index, id="", payload=part.payload)
            for index, part in enumerate(post.parts)
        )
        return PublishResult(
            post_id=post.id, account=self.account, platform=post.platform, parts=parts, dry_run=True
        )

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        return {}

    def followups(self) -> DryRunFollowups:
        """Follow-up writes (boosts, pins, deletions) that only say what they would do."""
        return DryRunFollowups(self.account)

    def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
        """A dry run published nothing, so there is nothing to read: no readings (and no request)."""
        return []

    def check(self) -> AccountInfo:
        """Only whether the secret is there; the server is not asked."""
        if isinstance(self.settings, MastodonAccount):
            name, server = self.settings.token_env, str(self.settings.instance)
        else:
            name, server = self.settings.password_env, str(self.settings.service)
        try:
            self.ctx.secrets.get(name)
        except CredentialsError as exc:
            return AccountInfo(self.account, self.settings.platform, ok=False, server=server, error=str(exc))
        handle = self.settings.handle if isinstance(self.settings, BlueskyAccount) else None
        return AccountInfo(self.account, self.settings.platform, ok=True, handle=handle, server=server)

    def close(self) -> None:
        return None


class DryRunFollowups:
    """A dry run's follow-up writer: nothing is written, nothing is ever found on a server."""

    def __init__(self, account: str) -> None:
        self.account = account

    def write(self, kind: WriteKind, target: Target, when: datetime) -> WriteOutcome:
        return WriteOutcome(f"dry run: would {kind} {target.post_id}")

    def is_done(self, kind: WriteKind, target: Target, when: datetime) -> bool:
        return False
