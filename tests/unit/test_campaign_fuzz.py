"""Random mutations of the example campaign never crash ``validate`` and never hang it.

Each example copies the example campaign, mutates one file (its bytes, one YAML line standing for a node, or a
template fragment inserted into a text) and runs ``amplifier validate`` in-process: the exit code is 0 or 2, never 1
(an internal error), stderr holds only ``file:line:col: message`` lines (or one usage line), and each run finishes
within a time bound enforced by an alarm.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT

TIME_LIMIT = 20  # seconds per validate run, on a loaded machine
FILES = ["schedule.yaml", "messages/calls.yaml", "messages/countdowns.yaml"]
SCALARS = [
    "2027-02-30",
    "2027-13-26",
    "0001-01-01",
    "9999-12-31",
    "20271101",
    "10",
    "~",
    "[",
    "{",
    "]",
    '"\\ud800"',
    '"\\x1b[2J"',
    '"\\0"',
    "*nothing",
    "&a x",
    "yes",
    "-1",
    "1e999",
    "0x10",
    "!!binary aGk=",
    "|",
    ">-",
    "'",
    "[5, -9]",
    "2027-01-20T14:00+05:00",
    "0 18 30 2 *",
    "- x",
    "{a: b}",
    "<<: *a",
    "9" * 40,
    "@x",
    "\t",
]
FRAGMENTS = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{{ evnt }}",
    "{{ days_left | dayz }}",
    "{% for x in y %}",
    "{% endfor %}",
    "{{ event.name }}",
    "{{ days_left | plural(one='#', other='#') }}",
    "{#",
    "\\",
    '"',
    "{{ 1/0 }}",
    "{{ hashtags }}",
    "{{ event.url }}",
]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example")
    shutil.copy(ROOT / "schedule.yaml", folder / "schedule.yaml")
    shutil.copytree(ROOT / "messages", folder / "messages")
    shutil.copytree(ROOT / "images", folder / "images")
    return folder


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"validate ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def validate(folder: Path) -> tuple[int, str]:
    from amplifier.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), alarm(TIME_LIMIT):
        try:
            main(
                [
                    "validate",
                    "--config",
                    str(folder / "schedule.yaml"),
                    "--now",
                    "2027-01-01",
                    "--horizon",
                    "21d",
                ]
            )
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


def mutated(example: Path, tmp: Path, name: str, change: bytes) -> Path:
    folder = tmp / f"c{time.monotonic_ns()}"
    shutil.copytree(example, folder)
    (folder / name).write_bytes(change)
    return folder


def check(code: int, err: str) -> None:
    assert code in (0, 2), err
    assert "internal error" not in err, err
    assert "Traceback" not in err, err
    for line in err.strip().splitlines():
        assert re.match(r"^.+:\d+:\d+: \S", line) or line.startswith("--"), err


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    cut = draw(st.integers(0, 8))
    return data[:at] + draw(st.binary(max_size=8)) + data[at + cut :]


@st.composite
def line_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.decode().splitlines(keepends=True)
    index = draw(st.integers(0, len(lines) - 1))
    line = lines[index]
    action = draw(st.sampled_from(["value", "delete", "duplicate", "indent", "dedent"]))
    if action == "value" and ":" in line:
        key = line.split(":", 1)[0]
        lines[index] = f"{key}: {draw(st.sampled_from(SCALARS))}\n"
    elif action == "delete":
        del lines[index]
    elif action == "duplicate":
        lines.insert(index, line)
    elif action == "indent":
        lines[index] = " " * draw(st.integers(1, 3)) + line
    else:
        lines[index] = line[draw(st.integers(1, 3)) :]
    return "".join(lines).encode()


@st.composite
def template_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.decode().splitlines(keepends=True)
    texts = [i for i, line in enumerate(lines) if re.search(r"^\s+(en|ku|ckb|ar|tr|de): ", line)]
    index = draw(st.sampled_from(texts))
    line = lines[index]
    at = draw(st.integers(line.index(":") + 2, len(line) - 1))
    lines[index] = line[:at] + draw(st.sampled_from(FRAGMENTS)) + line[at:]
    return "".join(lines).encode()


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(FILES))
def test_byte_mutations_never_crash(example: Path, tmp_path: Path, data: st.DataObject, name: str) -> None:
    change = data.draw(byte_mutation((example / name).read_bytes()))
    check(*validate(mutated(example, tmp_path, name, change)))


@SETTINGS
@given(data=st.data(), name=st.sampled_from(FILES))
def test_yaml_node_mutations_never_crash(
    example: Path, tmp_path: Path, data: st.DataObject, name: str
) -> None:
    change = data.draw(line_mutation((example / name).read_bytes()))
    check(*validate(mutated(example, tmp_path, name, change)))


@SETTINGS
@given(data=st.data(), name=st.sampled_from(FILES[1:]))
def test_template_mutations_never_crash(
    example: Path, tmp_path: Path, data: st.DataObject, name: str
) -> None:
    change = data.draw(template_mutation((example / name).read_bytes()))
    check(*validate(mutated(example, tmp_path, name, change)))
