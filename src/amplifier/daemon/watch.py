"""Watching for the daemon: the campaign files (hot reload) and the pause switches.

A reload loads the files again: a valid campaign is planned and replaces the running one (publishers of changed
accounts are closed and made again); an invalid one is logged line by line and the last valid campaign stays.
All posting is paused by the ledger's switch (``amplifier pause``), a ``PAUSE`` file in the state folder, or a
further switch the caller gives (a dry run obeys the real folder's).

``serve`` looks when the kernel reports a change (:mod:`.filewatch`): :meth:`WatchMixin.watched_folders` are the
folders to watch, :meth:`WatchMixin.watch_relevant` the paths whose events count (the campaign's files, a file a
``messages:`` glob would match, the ``PAUSE`` file and the SQLite ledger's files, which ``amplifier pause`` writes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from amplifier.campaign.load import Campaign
from amplifier.daemon.filewatch import FileWatcher
from amplifier.daemon.planning import PlanningMixin, PreparedPlan, sync_counts
from amplifier.daemon.reloading import ReloadJob
from amplifier.daemon.settings import PAUSE_NAME
from amplifier.delivery.ledger import LEDGER_NAME
from amplifier.errors import AmplifierError, CampaignError
from amplifier.notify.alerting import Alerting
from amplifier.notify.alerts import daemon_stuck, reload_rejected
from amplifier.publish.base import Publisher
from amplifier.publish.sessions import StateDir

FileStats = dict[Path, tuple[int, int] | None]


def snapshot_files(campaign: Campaign) -> FileStats:
    """The stat (mtime, size) of every file the campaign is made of, or None for a missing one."""
    paths = set(campaign.files) | {campaign.schedule_path}
    for pattern in campaign.schedule.messages:
        paths.update(campaign.root.glob(pattern))
    snapshot: FileStats = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            snapshot[path] = None
        else:
            snapshot[path] = (stat.st_mtime_ns, stat.st_size)
    return snapshot


class WatchMixin(PlanningMixin):
    """Reload on a change of the campaign files; notice and log changes of the pause switches."""

    loader: Callable[[Path], Campaign]
    pause_dir: Path | None
    outside_pause: Callable[[], str | None] | None
    _files: FileStats
    _pause_state: tuple[str | None, tuple[tuple[str, str], ...]] | None
    _publishers: dict[str, Publisher]
    _publishers_lock: threading.Lock
    alerting: Alerting
    state_dir: Path | None
    reload_in_background = False  # serve: a reload loads and renders on its own thread
    _reloading: ReloadJob | None = None
    watcher: FileWatcher | None = None  # serve: the file-system notifications, when they work
    reload_done: Callable[[], None] | None = (
        None  # serve: called when a background reload is ready to swap in
    )

    def heartbeat(self, now: datetime) -> None: ...  # the daemon's

    @property
    def pause_file(self) -> Path | None:
        return None if self.pause_dir is None else self.pause_dir / PAUSE_NAME

    def paused(self) -> str | None:
        """Why all posting is paused (the ledger's switch or the ``PAUSE`` file), None when it is not."""
        reason = self.ledger.pause_reason()
        if reason is None and self.outside_pause is not None:
            reason = self.outside_pause()
        if reason is not None:
            return reason
        if self.pause_file is not None and self.pause_file.exists():
            return f"the file {self.pause_file} exists"
        return None

    def watched_folders(self) -> set[Path]:
        """The folders whose file events may matter: those of the campaign's files and of its ``messages:``
        globs, and the pause switches' folder."""
        root = self.campaign.root
        folders = {path.parent for path in self._files} | {root}
        for pattern in self.campaign.schedule.messages:
            fixed = [part for part in Path(pattern).parent.parts if not any(c in part for c in "*?[")]
            if len(fixed) == len(Path(pattern).parent.parts):
                folders.add(root.joinpath(*fixed))
        if self.pause_dir is not None:
            folders.add(self.pause_dir)
        return {folder.resolve() for folder in folders}

    def watch_relevant(self, path: Path) -> bool:
        """Whether an event about ``path`` may change the campaign or a pause switch (a heartbeat or an
        editor's swap file does not)."""
        switch = path.name == PAUSE_NAME or path.name.startswith(LEDGER_NAME)
        if switch and self.pause_dir is not None and path.parent == self.pause_dir.resolve():
            return True
        if path in {known.resolve() for known in self._files}:
            return True
        if (
            path.is_symlink()
        ):  # a link the files may go through (a Kubernetes ConfigMap swaps `..data` at once)
            return True
        root = self.campaign.root.resolve()
        try:
            inside = path.relative_to(root)
        except ValueError:
            return False
        return any(inside.match(pattern) for pattern in self.campaign.schedule.messages)

    def reload(self, now: datetime) -> bool:
        """Load the campaign again: a valid one is planned (True); an invalid one is logged, the last valid
        campaign stays (False)."""
        try:
            rendered = self._load(now)
        except AmplifierError as exc:
            return self._rejected(exc, now)
        return self._swap(rendered, now)

    def _load(self, now: datetime) -> PreparedPlan:
        """Load and render the files (the slow part; touches neither the ledger nor the running campaign)."""
        return self.prepare(now, self.loader(self.campaign.schedule_path))

    def _rejected(self, exc: AmplifierError, now: datetime) -> bool:
        lines = [str(problem) for problem in exc.problems] if isinstance(exc, CampaignError) else exc.lines()
        for line in lines:
            self.log.emit("reload invalid", problem=line)
        self.log.emit("reload invalid", problems=len(lines), action="keeping the last valid campaign")
        self.alerting.raise_(reload_rejected(lines), now)
        return False

    def _swap(self, rendered: PreparedPlan, now: datetime) -> bool:
        """Make a loaded and rendered campaign the running one (under the pass's lock: quick)."""
        old_accounts = dict(self.campaign.schedule.accounts)
        try:
            report = self.apply_plan(rendered, now)
        except AmplifierError as exc:
            return self._rejected(exc, now)
        campaign = rendered.campaign
        with self._publishers_lock:
            stale = [
                account
                for account in self._publishers
                if campaign.schedule.accounts.get(account) != old_accounts.get(account)
            ]
            closing = [self._publishers.pop(account) for account in stale]
        for publisher in closing:
            publisher.close()
        self.log.emit("reload ok", **sync_counts(report))
        state = StateDir(self.state_dir) if self.state_dir is not None else None
        self.alerting.reconfigure(campaign, state, log=self.log.emit)
        return True

    def _loaded(self, snapshot: Mapping[Path, tuple[int, int] | None]) -> None:
        # The files as they were before the load read them (a write during the load differs from them and is
        # loaded at the next look); stats taken now only for files the new campaign added.
        after = snapshot_files(self.campaign)
        self._files = {path: snapshot.get(path, stat) for path, stat in after.items()}
        if self.watcher is not None:
            self.watcher.watch(self.watched_folders())  # a new campaign may name files in other folders

    @property
    def reloading_since(self) -> datetime | None:
        job = self._reloading
        return job.started if job is not None and not job.done.is_set() else None

    def check_reload(self, now: datetime) -> None:
        """From a job that does not wait for the pass's lock: log and alert a reload running for longer than
        ``settings.reload_slow`` seconds (once per reload)."""
        job = self._reloading
        if job is None or job.done.is_set() or job.reported:
            return
        if (now - job.started).total_seconds() > self.settings.reload_slow:
            job.reported = True
            seconds = f"{self.settings.reload_slow:.0f}"
            self.log.emit(
                "reload slow", since=job.started, action="posting goes on with the last valid campaign"
            )
            reason = f"a reload of the campaign files has run for more than {seconds} seconds"
            self.alerting.raise_(daemon_stuck(reason), now)

    def watch(self, now: datetime) -> bool:
        """Check the campaign files and the pause switches; True when the next wake must be recomputed. With
        :attr:`reload_in_background` a changed campaign is loaded on its own thread and swapped in by a later
        call, when it is ready."""
        changed = False
        job = self._reloading
        if job is not None and job.done.is_set():
            self._reloading = None
            if job.error is not None:
                self._rejected(job.error, now)
            elif job.result is not None:
                self._swap(job.result, now)
            self._loaded(job.snapshot)
            self.heartbeat(now)
            changed = True
        snapshot = snapshot_files(self.campaign)
        if snapshot != self._files and self._reloading is None:
            if self.reload_in_background:
                self._reloading = ReloadJob(lambda: self._load(now), snapshot, now, on_done=self.reload_done)
                self.log.emit("reload started")
                self.heartbeat(now)  # `status` shows the reload in progress
            else:
                self.reload(now)
                self._loaded(snapshot)
                changed = True
        paused = self.paused()
        accounts = self.ledger.paused_accounts()
        state = (paused, tuple(sorted(accounts.items())))
        if state != self._pause_state:
            was_paused, were_paused = self._pause_state or (None, ())
            if paused != was_paused:
                if paused is None:
                    self.log.emit("resumed")
                else:
                    self.log.emit("paused", reason=paused)
            for account, reason in state[1]:
                if (account, reason) not in were_paused:
                    self.log.emit("paused", account=account, reason=reason)
            for account, _reason in were_paused:
                if account not in accounts:
                    self.log.emit("resumed", account=account)
            self._pause_state = state
            changed = True
        return changed
