"""No silent outage: the daemon's alerts, credential pauses that resume by themselves, and what a pass left unsent.

* **Alerts.** The delivery path and the daemon report what they do through :meth:`OutageMixin._emit`; the facts
  an operator must hear of become alerts (:mod:`amplifier.notify`): a post failed or expired, an account paused
  for its credentials, an outcome still unknown when its check came.
* **Credential pauses.** An account paused because its secret is missing or was rejected gets a record in the
  state folder (``pauses/<account>.json``: the variable's name, the ledger's reason, and the keyed fingerprint of
  the rejected secret, never the secret). Each pass reads the secret again; when it changed, the account resumes by
  itself (a log line and an ``account_resumed`` alert). A pause without a record (``amplifier pause --account``,
  the operator's) never resumes by itself.
* **Unsent.** :meth:`OutageMixin.unsent`: every post due at a pass's instant that did not go out, and why (for
  ``run --once``'s log and exit code).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.clock import Clock
from amplifier.daemon.events import EventLog, TickReport, utc_minute
from amplifier.daemon.settings import FAR_FUTURE
from amplifier.delivery.ledger import Ledger, LedgerError, Row, State
from amplifier.errors import CredentialsError, StateError
from amplifier.notify import alerts
from amplifier.notify.alerting import Alerting
from amplifier.publish.base import Publisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir, safe_name, secret_changed, secret_fingerprint
from amplifier.publish.state import StateStore

PAUSES = "pauses"
UNKNOWN_OVERDUE = timedelta(minutes=15)  # an unknown outcome whose check is this late is reported


def server_of(settings: MastodonAccount | BlueskyAccount) -> str | None:
    url = settings.instance if isinstance(settings, MastodonAccount) else settings.service
    return urlsplit(str(url)).hostname


def secret_name(settings: MastodonAccount | BlueskyAccount) -> str:
    return settings.token_env if isinstance(settings, MastodonAccount) else settings.password_env


class PauseRecords:
    """The credential pauses of the state folder: ``pauses/<account>.json`` (mode 0600)."""

    def __init__(self, state: Path | StateStore | None) -> None:
        self.state: StateStore | None = StateDir(state) if isinstance(state, Path) else state

    def _name(self, account: str) -> str:
        return safe_name(account) + ".json"

    def write(
        self,
        account: str,
        *,
        reason: str,
        variable: str,
        now: datetime,
        secret: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """Record the credential pause of ``account``: the rejected ``secret``'s fingerprint (or ``fingerprint``
        itself; neither: the secret was missing), never the secret."""
        if self.state is None:
            return
        if fingerprint is None and secret:
            fingerprint = secret_fingerprint(self.state, secret)
        data = {"version": 1, "account": account, "reason": reason, "variable": variable}
        self.state.write_json(
            PAUSES, self._name(account), data | {"secret": fingerprint, "at": now.isoformat()}
        )

    def read(self, account: str) -> dict[str, Any] | None:
        if self.state is None:
            return None
        data = self.state.read_json(PAUSES, self._name(account))
        return data if isinstance(data, dict) and data.get("account") == account else None

    def delete(self, account: str) -> None:
        if self.state is not None:
            self.state.delete(PAUSES, self._name(account))

    def changed(self, record: dict[str, Any], secret: str | None) -> bool:
        if self.state is None:
            return False
        fingerprint = record.get("secret")
        return secret_changed(self.state, fingerprint if isinstance(fingerprint, str) else None, secret)


class OutageMixin:
    """Alerts, credential pauses and their automatic resumption; see the module docstring."""

    campaign: Campaign
    ledger: Ledger
    log: EventLog
    alerting: Alerting
    secrets: SecretSources
    state_dir: Path | None
    state_store: StateStore | None  # the nodes' shared store (a shared ledger), else None: the state folder
    _publishers: dict[str, Publisher]
    _publishers_lock: threading.Lock
    _pause_state: tuple[str | None, tuple[tuple[str, str], ...]] | None

    clock: Clock

    @property
    def pause_records(self) -> PauseRecords:
        return PauseRecords(self.state_store if self.state_store is not None else self.state_dir)

    def _emit(self, event: str, **fields: Any) -> None:
        """Log one event (the delivery path's and the daemon's), and raise the alert it calls for."""
        self.log.emit(event, **fields)
        try:
            self._alert(event, fields)
        except (LedgerError, StateError, CredentialsError) as exc:
            self.log.emit("notify error", action=event, reason=str(exc))

    def _settings(self, account: str) -> MastodonAccount | BlueskyAccount | None:
        return self.campaign.schedule.accounts.get(account)

    def _server(self, account: str | None) -> str | None:
        settings = self._settings(account) if account else None
        return server_of(settings) if settings is not None else None

    def _alert(self, event: str, fields: dict[str, Any]) -> None:
        now = self.clock()
        post, account = str(fields.get("id")), fields.get("account")
        reason = str(fields.get("reason") or fields.get("detail") or "")
        if event == "failed" or (event == "reconcile" and fields.get("outcome") == "failed"):
            self.alerting.raise_(alerts.post_failed(post, str(account), reason, self._server(account)), now)
        elif event == "followup-failed" and fields.get(
            "kind"
        ):  # a boost, pin or deletion (daemon/followups.py)
            cause = f"its {fields['kind']} by {account} failed: {reason}"
            self.alerting.raise_(alerts.post_failed(post, str(account), cause, self._server(account)), now)
        elif event == "expired":
            # "missed its window: due ... UTC, not out by ... UTC (why)": the times differ per post, the cause not
            cause = re.sub(r": due .* UTC \(", " (", reason)
            self.alerting.raise_(alerts.post_expired(post, str(account), cause), now)
        elif event == "reconcile" and fields.get("outcome") == "unknown":
            # its check came, and amplifier still cannot tell whether it went out
            since = self.ledger.get(post).unknown_since or now
            self.alerting.raise_(
                alerts.outcome_unknown(post, str(account), since, self._server(account)), now
            )

    def credential_pause(self, account: str, error: BaseException | None, post_id: str | None = None) -> None:
        """The delivery path paused ``account`` for its credentials (``error``): record which secret was rejected
        (its fingerprint: the one the publisher used, else the secret's now; none for a missing secret) and raise
        the alert naming the variable to fix."""
        settings = self._settings(account)
        if settings is None:
            return
        now = self.clock()
        reason = self.ledger.paused_accounts().get(account, str(error or ""))
        variable = secret_name(settings)
        fingerprint = getattr(error, "fingerprint", None)
        try:
            if isinstance(fingerprint, str):
                self.pause_records.write(
                    account, reason=reason, variable=variable, fingerprint=fingerprint, now=now
                )
            else:
                secret = self._read_secret(variable)
                self.pause_records.write(account, reason=reason, variable=variable, secret=secret, now=now)
        except StateError as exc:  # then the account waits for `amplifier resume --account`
            self.log.emit("error", account=account, reason=str(exc))
        # The cause shared by every account it happened to (one line for an outage on many): without the post's
        # id and the variable's name (the alert names the variables to fix).
        cause = reason.removeprefix(f"{account}:").removeprefix(f"{post_id}: ") if post_id else reason
        cause = cause.replace(f" in {variable}", "")
        self.alerting.raise_(alerts.account_paused(account, cause, server_of(settings), variable), now)

    def _read_secret(self, variable: str) -> str | None:
        try:
            return self.secrets.get(variable, fresh=True).get_secret_value()
        except CredentialsError:
            return None

    def resume_fixed(self, now: datetime) -> list[str]:
        """Resume every account paused for its credentials whose secret changed since (read afresh); an
        operator's pause (no record, or the ledger's reason is not the recorded one) is left alone."""
        resumed = []
        records = self.pause_records
        for account, reason in self.ledger.paused_accounts().items():
            record = records.read(account)
            if record is None or record.get("reason") != reason:
                continue
            variable = str(record.get("variable"))
            if not records.changed(record, self._read_secret(variable)):
                continue
            self.ledger.resume_account(account)
            records.delete(account)
            with self._publishers_lock:
                publisher = self._publishers.pop(account, None)
            if publisher is not None:
                publisher.close()  # the next one is made with the new secret
            if self._pause_state is not None:
                everything, accounts = self._pause_state
                self._pause_state = (everything, tuple(item for item in accounts if item[0] != account))
            why = f"its secret {variable} changed"
            self.log.emit("resumed", account=account, reason=why)
            self.alerting.raise_(alerts.account_resumed(account, why), now)
            resumed.append(account)
        return resumed

    def credential_paused(self) -> dict[str, str]:
        """The accounts paused for their credentials (not by an operator), with the reason."""
        records = self.pause_records
        return {
            account: reason
            for account, reason in self.ledger.paused_accounts().items()
            if (record := records.read(account)) is not None and record.get("reason") == reason
        }

    def healthy(self, report: TickReport) -> bool:
        """Whether a pass was healthy (the dead man's switch): nothing failed or expired in it, and no account is
        paused for its credentials (in it or before: a campaign with a secret to fix is not healthy)."""
        return report.healthy and not self.credential_paused()

    def overdue_unknown(self, now: datetime) -> None:
        """Alert for every post whose outcome is unknown and whose check is overdue by :data:`UNKNOWN_OVERDUE`."""
        for row in self.ledger.claimed():
            if row.unknown_since is not None and now - row.next_attempt_at > UNKNOWN_OVERDUE:
                alert = alerts.outcome_unknown(
                    row.id, row.account, row.unknown_since, self._server(row.account)
                )
                self.alerting.raise_(alert, now)

    def unsent(self, now: datetime, report: TickReport) -> list[tuple[Row, str, bool]]:
        """Every post due at ``now`` that did not go out, why, and whether that is a failure (an operator's
        pause is not)."""
        paused = self.ledger.paused_accounts()
        credentials = self.credential_paused()
        everything = report.paused or self.ledger.pause_reason()
        found = []
        rows = self.ledger.history(
            now - FAR_FUTURE, now + timedelta(microseconds=1), states=[State.PLANNED, State.CLAIMED]
        )
        for row in rows:
            failure = True
            if row.account in credentials:
                why = f"the account is paused: {credentials[row.account]}"
            elif row.account in paused:
                why, failure = f"the account is paused by the operator: {paused[row.account]}", False
            elif everything:
                why, failure = f"all posting is paused: {everything}", False
            elif row.id in report.deferred:
                why = "the account's rate limit is spent"
            elif row.state == State.CLAIMED and row.unknown_since is not None:
                why = f"outcome unknown ({row.last_error}); checked again at {utc_minute(row.next_attempt_at)} UTC"
            elif row.state == State.CLAIMED:
                why = "being sent by another process"
            elif row.next_attempt_at > now:
                why = f"retry at {utc_minute(row.next_attempt_at)} UTC after: {row.last_error}"
            else:
                why = "waiting behind an earlier post of the account"
            found.append((row, why, failure))
        return found
