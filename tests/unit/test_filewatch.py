"""File-system notifications (inotify through watchdog): an editor's save is one debounced call once the file is
whole; files that do not matter call nothing; without notifications the watcher says so and the caller polls."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amplifier.daemon import filewatch
from amplifier.daemon.filewatch import FileWatcher
from amplifier.daemon.settings import settings_from_environ

QUIET = 0.5  # seconds without a call that count as "no (further) call"


class Calls:
    """``changed()`` for a watcher: counts the calls, and reads the watched file at each (was it whole?)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.seen: list[str | None] = []
        self.event = threading.Event()

    def __call__(self) -> None:
        try:
            self.seen.append(self.file.read_text())
        except OSError:
            self.seen.append(None)
        self.event.set()

    def wait(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(QUIET)  # and no further call


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Calls, FileWatcher]]:
    file = tmp_path / "messages.yaml"
    file.write_text("v1\n")
    calls = Calls(file)
    watcher = FileWatcher(lambda path: path.name == file.name, calls, debounce=0.15)
    assert watcher.start([tmp_path])
    try:
        yield file, calls, watcher
    finally:
        watcher.close()


def test_an_editor_save_by_rename_is_one_call_with_the_whole_file(
    watched: tuple[Path, Calls, FileWatcher],
) -> None:
    file, calls, _watcher = watched
    temp = file.with_name(".messages.yaml.tmp")
    with temp.open("w") as out:  # written in pieces, then renamed over the original
        out.write("v2 first half\n")
        out.flush()
        time.sleep(0.02)
        out.write("v2 second half\n")
    os.replace(temp, file)
    calls.wait(1)
    assert calls.seen == ["v2 first half\nv2 second half\n"]


def test_a_save_that_moves_the_original_away_first_is_one_call(
    watched: tuple[Path, Calls, FileWatcher],
) -> None:
    """vim's ``backupcopy=no``: the original renamed to a backup, then the file written again."""
    file, calls, _watcher = watched
    os.replace(file, file.with_name("messages.yaml~"))
    time.sleep(0.03)  # the file is missing meanwhile: no call yet
    file.write_text("v3\n")
    calls.wait(1)
    assert calls.seen == ["v3\n"]


def test_files_that_do_not_matter_call_nothing(watched: tuple[Path, Calls, FileWatcher]) -> None:
    file, calls, _watcher = watched
    (file.parent / "heartbeat.json").write_text("{}")
    (file.parent / ".messages.yaml.swp").write_text("swap")
    (file.parent / "sub").mkdir()
    calls.wait(1, timeout=QUIET)
    assert calls.seen == []


def test_a_stream_of_events_that_never_pauses_still_calls(tmp_path: Path) -> None:
    file = tmp_path / "busy.log"
    calls = Calls(file)
    watcher = FileWatcher(lambda path: True, calls, debounce=0.2, debounce_max=0.5)
    assert watcher.start([tmp_path])
    try:
        began = time.monotonic()
        while not calls.seen and time.monotonic() - began < 3:
            file.write_text(str(time.monotonic()))  # every 50 ms: never 0.2 s of quiet
            time.sleep(0.05)
        assert calls.seen
        assert time.monotonic() - began < 1.5
    finally:
        watcher.close()


def test_folders_watched_after_a_change_of_them(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    calls = Calls(new / "x.yaml")
    watcher = FileWatcher(lambda path: path.suffix == ".yaml", calls, debounce=0.05)
    assert watcher.start([old])
    try:
        assert watcher.watch([new])
        (old / "x.yaml").write_text("old")
        calls.wait(1, timeout=QUIET)
        assert calls.seen == []  # no longer watched
        (new / "x.yaml").write_text("new")
        calls.wait(1)
        assert calls.seen == ["new"]
    finally:
        watcher.close()


def raising(error: Exception) -> Callable[[], filewatch.Observer]:
    def make() -> filewatch.Observer:
        raise error

    return make


@pytest.mark.parametrize("error", [OSError(24, "inotify watch limit reached"), ImportError("no watchdog")])
def test_without_notifications_start_says_so_and_nothing_runs(tmp_path: Path, error: Exception) -> None:
    calls = Calls(tmp_path / "x")
    watcher = FileWatcher(lambda path: True, calls, observer=raising(error))
    assert not watcher.start([tmp_path])
    assert not watcher.active
    assert not watcher.watch([tmp_path])
    (tmp_path / "x").write_text("changed")
    calls.wait(1, timeout=QUIET)
    assert calls.seen == []
    watcher.close()


def test_the_native_observer_is_inotify_here() -> None:
    """This suite runs on Linux: the notifications tested above are inotify's, not watchdog's own polling."""
    observer = filewatch.inotify_observer()
    assert "Inotify" in type(observer).__name__


@pytest.mark.parametrize(
    ("value", "notify"), [(None, True), ("", True), ("0", True), ("1", False), ("yes", False)]
)
def test_the_poll_files_hook_turns_notifications_off(value: str | None, notify: bool) -> None:
    environ = {} if value is None else {"AMPLIFIER_TEST_POLL_FILES": value}
    assert settings_from_environ(environ).notify_files is notify
