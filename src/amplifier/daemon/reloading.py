"""A reload of the campaign files on its own thread, so that loading and rendering a new version (bounded, but up to
seconds for a hostile template) never holds up posting: the daemon keeps posting the last valid campaign and swaps
the new one in, under the pass's lock, as soon as it is ready (``on_done``) (:meth:`amplifier.daemon.watch.WatchMixin.watch`). A reload
that takes longer than :attr:`~amplifier.daemon.settings.DaemonSettings.reload_slow` is logged, alerted and shown by
the heartbeat (``reloading_since``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from amplifier.daemon.planning import PreparedPlan
from amplifier.errors import AmplifierError


class ReloadJob:
    """One reload running on its own thread: ``work()`` loads and renders; :attr:`done` is set when it ended,
    with :attr:`result` or :attr:`error`."""

    def __init__(
        self,
        work: Callable[[], PreparedPlan],
        snapshot: Mapping[Path, tuple[int, int] | None],
        started: datetime,
        *,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.started = started
        self.result: PreparedPlan | None = None
        self.error: AmplifierError | None = None
        self.done = threading.Event()
        self.reported = False  # the slow reload was logged and alerted
        self._work = work
        self._on_done = on_done  # ``serve``: swap the result in now, not at the next look at the files
        threading.Thread(target=self._run, name="reload", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self._work()
        except AmplifierError as exc:
            self.error = exc
        except Exception as exc:  # a bug in loading must not take the daemon down: the last campaign stays
            self.error = AmplifierError(f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()
            if self._on_done is not None:
                self._on_done()
