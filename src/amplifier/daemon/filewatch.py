"""File-system notifications for the daemon: it hears of a change of the campaign files, or of a pause switch, when
the kernel reports it (inotify on Linux, through :mod:`watchdog`), instead of looking every couple of seconds.

:class:`FileWatcher` watches a set of folders (not recursively) and calls ``changed()`` once the events that
``relevant(path)`` accepts have been quiet for :data:`DEBOUNCE` seconds: an editor's save (a temporary file
written, then renamed over the original; or the original renamed to a backup, then written again) is one call,
after the file is whole again, not a reload of a missing or half-written file. A stream of events that never
pauses still calls at least every :data:`DEBOUNCE_MAX` seconds.

Where notifications are unavailable (no inotify: the limit of watches reached, an unsupported file system, the
package missing), :meth:`FileWatcher.start` returns False and the caller polls (``DaemonSettings.watch_interval``).
Where they exist but may miss a change (a network file system; files edited on the host of a container on some
platforms), the daemon still looks now and then (``DaemonSettings.watch_backstop``).

Idle, the watcher's threads block in the kernel (the inotify read) and on a condition (the debounce): no
wake-up until something happens.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

DEBOUNCE = 0.1  # seconds of quiet after the last relevant event before ``changed()`` is called
DEBOUNCE_MAX = 1.0  # seconds: events that never pause still call ``changed()`` this often


class Observer(Protocol):
    """What :class:`FileWatcher` needs of a watchdog observer (a test may give its own)."""

    def schedule(
        self, event_handler: Any, path: str, *, recursive: bool = False, event_filter: Any = None
    ) -> Any: ...

    def unschedule_all(self) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def inotify_observer() -> Observer:
    """The platform's native observer (inotify on Linux); raises ImportError or OSError where there is none."""
    from watchdog.observers import Observer as NativeObserver
    from watchdog.observers.polling import PollingObserver

    if NativeObserver is PollingObserver:  # watchdog's own fallback polls: we poll ourselves, more cheaply
        raise OSError("no file-system notifications on this platform")
    observer: Observer = NativeObserver()
    return observer


class FileWatcher:
    """Calls ``changed()`` after relevant file events in ``folders``, debounced (see the module docstring)."""

    def __init__(
        self,
        relevant: Callable[[Path], bool],
        changed: Callable[[], None],
        *,
        debounce: float = DEBOUNCE,
        debounce_max: float = DEBOUNCE_MAX,
        observer: Callable[[], Observer] | None = None,
    ) -> None:
        self.relevant = relevant
        self.changed = changed
        self.debounce = debounce
        self.debounce_max = debounce_max
        self._make_observer = observer or (lambda: inotify_observer())  # looked up late: tests replace it
        self._observer: Observer | None = None
        self._folders: frozenset[Path] = frozenset()
        self._cond = threading.Condition()
        self._due: float | None = None  # monotonic instant to call ``changed()``
        self._first: float | None = None  # the first event of the burst not yet reported
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """Whether notifications are on (False: the caller must poll)."""
        return self._observer is not None

    def start(self, folders: Iterable[Path]) -> bool:
        """Watch ``folders``; False (and nothing started) when notifications are unavailable."""
        try:
            observer = self._make_observer()
            self._schedule(observer, folders)
            observer.start()
        except (ImportError, OSError, RuntimeError):
            return False
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="file-watch", daemon=True)
        self._thread.start()
        return True

    def watch(self, folders: Iterable[Path]) -> bool:
        """Watch ``folders`` from now on (after a reload: a campaign may name other files); False when the new
        set could not be watched (the caller then polls)."""
        observer = self._observer
        if observer is None:
            return False
        wanted = frozenset(_existing(folders))
        if wanted == self._folders:
            return True
        try:
            observer.unschedule_all()
            self._schedule(observer, wanted)
        except (OSError, RuntimeError):
            self.close()
            return False
        return True

    def _schedule(self, observer: Observer, folders: Iterable[Path]) -> None:
        from watchdog.events import FileClosedEvent, FileDeletedEvent, FileMovedEvent

        # A file counts once it is written and closed, renamed or deleted: not while it is being written (a
        # half-written file is no reload), nor when it is only read or opened (a reload reads the files; `status`
        # opens the ledger), nor the daemon's own writes to the ledger it keeps open (the kernel then does not
        # wake the watcher at all: the mask asks only for these).
        kinds = [FileClosedEvent, FileDeletedEvent, FileMovedEvent]
        handler = _Handler(self.notice)
        wanted = frozenset(_existing(folders))
        for folder in sorted(wanted):
            observer.schedule(handler, str(folder), recursive=False, event_filter=kinds)
        self._folders = wanted

    def notice(self, *paths: str) -> None:
        """An event about ``paths`` (from the observer's thread): call ``changed()`` soon, if one is relevant."""
        if not any(path and self._relevant(path) for path in paths):
            return
        with self._cond:
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._due = min(now + self.debounce, self._first + self.debounce_max)
            self._cond.notify()

    def _relevant(self, path: str) -> bool:
        try:
            return self.relevant(Path(path))
        except Exception:  # in doubt, look: a look that finds nothing changed costs little
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._due is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._due is not None
                delay = self._due - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                self._due = self._first = None
            try:
                self.changed()
            except Exception:  # the callback's own errors are its business; the watcher goes on
                continue

    def close(self) -> None:
        """Stop watching (idempotent)."""
        observer, self._observer = self._observer, None
        with self._cond:
            self._closed = True
            self._cond.notify()
        if observer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                observer.stop()


def _existing(folders: Iterable[Path]) -> list[Path]:
    return [folder for folder in {Path(folder) for folder in folders} if folder.is_dir()]


class _Handler:
    """A watchdog event handler (duck-typed: watchdog calls ``dispatch``) that passes the event's paths on."""

    def __init__(self, notice: Callable[..., None]) -> None:
        self._notice = notice

    def dispatch(self, event: Any) -> None:
        if getattr(event, "is_directory", False) or event.event_type not in ("closed", "deleted", "moved"):
            return
        self._notice(_text(event.src_path), _text(getattr(event, "dest_path", "")))


def _text(path: str | bytes) -> str:
    return path.decode(errors="surrogateescape") if isinstance(path, bytes) else path
