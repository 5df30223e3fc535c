"""Broken and hostile campaign files: each mistake is one located line in plain words, exit 2, never a crash.

Every case runs ``amplifier validate`` as an operator would and asserts exit 2, a ``file:line:col`` line with the
expected words exactly once, no other line about the same mistake, and no library wording.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE, Result

RunCli = Callable[..., Result]
JARGON = (
    "Input should",
    "String should",
    "validation error",
    "[type=",
    "while parsing",
    "while scanning",
    "Traceback",
    "internal error",
    "pydantic",
    "ruamel",
    "relative URL",
)
COUNTDOWN = '    kind: countdown\n    event: kobane-day\n    days_before: [3, 2, 1]\n    at: "10:00"\n'


def recurring(cron: str = "0 18 * * *", start: str = "2027-01-01", end: str = "2027-03-01") -> str:
    return f"    kind: recurring\n    cron: {cron}\n    start: {start}\n    end: {end}\n"


def once(at: str) -> str:
    return f"    kind: once\n    at: {at}\n"


def image(path: str, extra: str = "") -> str:
    return f"hashtags: [Riseup4Rojava]\n    images:\n      - path: {path}\n        alt: An image{extra}"


def validate(run_cli: RunCli, schedule: Path) -> list[str]:
    result = run_cli("validate", "--config", str(schedule), "--now", "2027-01-01")
    assert result.code == 2, (result.code, result.err)
    for word in JARGON:
        assert word not in result.err, result.err
    lines = result.err.strip().splitlines()
    for line in lines:
        assert re.match(r"^.+:\d+:\d+: \S", line), line
    return lines


def one_line(lines: list[str], file: str, line: int, col: int, fragment: str) -> None:
    located = [text for text in lines if text.split(":", 3)[0].endswith(file) and f":{line}:{col}: " in text]
    assert len(lines) == 1, lines
    assert len(located) == 1, lines
    assert fragment in located[0], lines


SCHEDULE = [
    # (name, replace this, with this, line, col, fragment)
    (
        "impossible date",
        "date: 2027-11-01",
        "date: 2027-02-30",
        8,
        11,
        "2027-02-30 is not a date: February 2027 has 28",
    ),
    ("month 13", "date: 2027-11-01", "date: 2027-13-26", 8, 11, "the month is 1 to 12"),
    ("year 1", "date: 2027-11-01", "date: 0001-01-01", 8, 11, "use a year between 1900 and 2999"),
    ("year 9999", "date: 2027-11-01", "date: 9999-12-31", 8, 11, "use a year between 1900 and 2999"),
    (
        "quoted year 9999",
        "date: 2027-11-01",
        'date: "9999-12-31"',
        8,
        11,
        "9999-12-31: use a year between 1900 and 2999",
    ),
    (
        "quoted impossible",
        "date: 2027-11-01",
        'date: "2027-02-30"',
        8,
        11,
        "'2027-02-30' cannot be read: write a date",
    ),
    ("quoted offset", "date: 2027-11-01", 'date: "2027-01-20T14:00+05:00"', 8, 11, "without an offset"),
    (
        "quoted end year 1",
        COUNTDOWN,
        recurring(end='"0001-01-01"'),
        24,
        10,
        "use a year between 1900 and 2999",
    ),
    ("number as date", "date: 2027-11-01", "date: 20271101", 8, 11, "20271101 is a number, not a date"),
    ("event offset", "date: 2027-11-01", "date: 2027-01-20T14:00+05:00", 8, 11, "without an offset"),
    ("event offset, seconds", "date: 2027-11-01", "date: 2027-01-20T14:00:00Z", 8, 11, "without an offset"),
    (
        "number as time",
        'at: "10:00"',
        "at: 10",
        24,
        9,
        "10 is a number, not a time: write the time in quotes",
    ),
    ("time offset", 'at: "10:00"', 'at: "10:00+05:00"', 24, 9, "without an offset"),
    ("once offset", COUNTDOWN, once("2027-03-27T09:00+05:00"), 22, 9, "without an offset"),
    ("once impossible", COUNTDOWN, once("2027-02-30T09:00:00"), 22, 9, "2027-02-30T09:00:00 is not a date"),
    ("once number", COUNTDOWN, once("10"), 22, 9, "10 is a number, not a date and time"),
    ("start impossible", COUNTDOWN, recurring(start="2027-02-30"), 23, 12, "2027-02-30 is not a date"),
    ("end impossible", COUNTDOWN, recurring(end="2027-13-26"), 24, 10, "2027-13-26 is not a date"),
    ("cron never fires", COUNTDOWN, recurring("0 18 30 2 *"), 21, 5, "cron '0 18 30 2 *' never fires"),
    (
        "cron hour",
        COUNTDOWN,
        recurring("0 25 * * *"),
        22,
        11,
        "the hour field '25' is out of range; use 0-23",
    ),
    ("cron weekday", COUNTDOWN, recurring("0 18 * * 9"), 22, 11, "the weekday field '9' is out of range"),
    ("cron fields", COUNTDOWN, recurring("0 18 * *"), 22, 11, "has 4 fields: write five"),
    (
        "cron key typo",
        COUNTDOWN,
        recurring().replace("cron:", "crn:"),
        22,
        5,
        "unknown key 'crn' (did you mean 'cron'?)",
    ),
    ("recurring key", COUNTDOWN, recurring() + "    startt: 2027-01-02\n", 25, 5, "(did you mean 'start'?)"),
    ("surrogate", "name: Test campaign", 'name: "\\ud800"', 2, 9, "lone surrogate"),
    ("surrogate in a key", "  language: en\n", '  language: en\n  "\\udc80": x\n', 5, 3, "lone surrogate"),
    ("NUL", "name: Test campaign", 'name: "a\\0b"', 2, 9, "contains a NUL character: remove it"),
    ("terminal escape", "name: Test campaign", 'name: "a\\e[2Jb"', 2, 9, "terminal escape character"),
    ("timezone city", "timezone: Europe/Berlin", "timezone: Berlin", 3, 13, "did you mean Europe/Berlin?"),
    (
        "platform",
        "platform: bluesky",
        "platform: blusky",
        16,
        15,
        "'blusky' is not one of mastodon or bluesky (did you mean 'bluesky'?)",
    ),
    (
        "language name",
        "language: en",
        "language: sorani",
        4,
        13,
        "use a language code such as en, ku, ckb, ar (did you mean 'ckb'?)",
    ),
    (
        "instance",
        "instance: https://mastodon.example",
        "instance: mastodon.social",
        13,
        15,
        "write the full address, https://mastodon.social",
    ),
    (
        "handle",
        "handle: campaign.bsky.social",
        "handle: '@campaign.bsky.social'",
        17,
        13,
        "write it without @",
    ),
    (
        "secret",
        "token_env: TEST_MASTO_TOKEN",
        "token_env: s3cr3t-token",
        14,
        16,
        "write the NAME of the environment variable",
    ),
    (
        "visibility",
        "    token_env: TEST_MASTO_TOKEN\n",
        "    token_env: TEST_MASTO_TOKEN\n    visibility: publik\n",
        15,
        17,
        "use one of public, unlisted, private or direct (did you mean 'public'?)",
    ),
    (
        "whole number",
        "    token_env: TEST_MASTO_TOKEN\n",
        "    token_env: TEST_MASTO_TOKEN\n    max_characters: lots\n",
        15,
        21,
        "write a whole number",
    ),
    ("bool", '    at: "10:00"\n', '    at: "10:00"\n    enabled: maybe\n', 25, 14, "write true or false"),
    ("list", "days_before: [3, 2, 1]", "days_before: 3", 23, 18, "write a list here"),
    (
        "range",
        "days_before: [3, 2, 1]",
        "days_before: [3, 2, 400]",
        23,
        25,
        "400 is out of range: use 0 to 366 days",
    ),
    (
        "accounts",
        '    at: "10:00"\n',
        '    at: "10:00"\n    accounts: masto\n',
        25,
        15,
        "write `all` or a list of account ids",
    ),
    ("hashtags", "  language: en\n", "  language: en\n  hashtags: x\n", 5, 13, "write a list of hashtags"),
    (
        "absolute glob",
        "campaign:\n",
        "messages: ['/etc/*']\ncampaign:\n",
        1,
        12,
        "write the pattern relative to the campaign folder",
    ),
    ("empty glob", "campaign:\n", "messages: ['']\ncampaign:\n", 1, 12, "an empty pattern"),
    (
        "indentation",
        "  language: en\n",
        "  language: en\n   x: 1\n",
        5,
        5,
        "invalid YAML: a `: ` where no key can start",
    ),
    ("tab", "  language: en\n", "  language: en\n\tx: 1\n", 5, 1, "a tab cannot indent YAML: use spaces"),
    (
        "unclosed list",
        "days_before: [3, 2, 1]",
        "days_before: [3, 2, 1",
        24,
        7,
        "a list in [ ] is not closed",
    ),
    (
        "duplicate key",
        "  language: en\n",
        "  language: en\n  language: de\n",
        5,
        3,
        "duplicate key 'language': it is already set on line 4",
    ),
    ("two documents", "campaign:\n", "---\na: 1\n---\ncampaign:\n", 3, 1, "one YAML document"),
    (
        "one line for a union",
        'at: "10:00"',
        'at: ["10:00", "25:00"]',
        24,
        19,
        "'25:00' cannot be read: write a local time",
    ),
    (
        "kind",
        "kind: countdown",
        "kind: countdwn",
        21,
        11,
        "'countdwn' is not one of countdown, recurring or once (did you mean 'countdown'?)",
    ),
    (
        "missed",
        '    at: "10:00"\n',
        '    at: "10:00"\n    missed: {action: later}\n',
        25,
        22,
        "use one of expire or post",
    ),
    (
        "grace",
        '    at: "10:00"\n',
        '    at: "10:00"\n    missed: {action: post, grace: soon}\n',
        25,
        35,
        "write a duration",
    ),
    (
        "url",
        "url: https://riseup4rojava.org/take-action/",
        "url: riseup4rojava.org",
        9,
        10,
        "write the full address, e.g. https://",
    ),
    (
        "event name",
        "name: {en: World Kobane Day, ku: Roja Cîhanî ya Kobanê, ckb: ڕۆژی جیهانیی کۆبانێ}",
        "name: [a, b]",
        7,
        11,
        "write a text, or a mapping of language code to text",
    ),
    ("top-level key", "campaign:\n", "campain:\n", 1, 1, "unknown key 'campain' (did you mean 'campaign'?)"),
    ("account id", "  masto:\n", "  mastodon tr:\n", 11, 3, "account 'mastodon tr': use lowercase letters"),
    ("block scalar", "name: Test campaign", "name: |x", 2, 10, "`|` or `>` starts a block of text"),
    ("unknown alias", "name: Test campaign", "name: *nothing", 2, 9, "*nothing names no anchor"),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "line", "col", "fragment"), SCHEDULE, ids=[c[0] for c in SCHEDULE]
)
def test_schedule_mistake_is_one_located_line(
    run_cli: RunCli,
    campaign_dir: Callable[..., Path],
    name: str,
    old: str,
    new: str,
    line: int,
    col: int,
    fragment: str,
) -> None:
    assert old in BASE_SCHEDULE, name
    lines = validate(run_cli, campaign_dir(schedule=BASE_SCHEDULE.replace(old, new, 1)))
    one_line(lines, "schedule.yaml", line, col, fragment)


MESSAGES = [
    ("hashtags", "hashtags: [Riseup4Rojava]", "hashtags: Riseup4Rojava", 3, 15, "write a list of hashtags"),
    (
        "focus",
        "hashtags: [Riseup4Rojava]",
        image("images/a.png", "\n        focus: [0.5, -9]"),
        7,
        22,
        "-9 is out of range: use -1 to 1",
    ),
    (
        "absolute image",
        "hashtags: [Riseup4Rojava]",
        image("/etc/passwd"),
        5,
        15,
        "write the image's path relative to the campaign folder",
    ),
    (
        "image outside",
        "hashtags: [Riseup4Rojava]",
        image("../../../../../etc/passwd"),
        5,
        15,
        "is outside the campaign folder",
    ),
    (
        "not an image",
        "hashtags: [Riseup4Rojava]",
        image("schedule.yaml"),
        5,
        15,
        "is not an image amplifier can read",
    ),
    (
        "text key",
        '      - text:\n          en: "{{ days_left',
        '      - txt:\n          en: "{{ days_left',
        5,
        9,
        "unknown key 'txt' (did you mean 'text'?)",
    ),
    (
        "language",
        '          en: "{{ days_left',
        '          english: "{{ days_left',
        6,
        20,
        "use a language code such as en",
    ),
    (
        "set id",
        "  countdown:\n",
        "  Bad Set:\n    variants: []\n  countdown:\n",
        2,
        3,
        "message set 'Bad Set': use lowercase",
    ),
    (
        "text type",
        '          en: "{{ days_left',
        '          en: 5\n          de: "{{ days_left',
        6,
        15,
        "write a text, or a list of texts",
    ),
    (
        "content warning",
        "hashtags: [Riseup4Rojava]",
        "hashtags: [a]\n    content_warning: 5",
        4,
        22,
        "write a text, or a mapping of language code to text",
    ),
    (
        "too many images",
        "hashtags: [Riseup4Rojava]",
        "hashtags: [a]\n    images: [a, b, c, d, e]",
        4,
        13,
        "takes at most 4 entries",
    ),
    # a bad character in a value that later reaches the file system (an image's path): reported once, never a crash
    ("surrogate in an image path", "hashtags: [Riseup4Rojava]", image('"\\ud800"'), 5, 15, "lone surrogate"),
    ("NUL in an image path", "hashtags: [Riseup4Rojava]", image('"images/a\\0.png"'), 5, 15, "NUL character"),
    (
        "control character",
        "is in {{ days_left }} days",
        "is in {{ days_left }} days\\x07",
        8,
        15,
        "control character U+0007",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "line", "col", "fragment"), MESSAGES, ids=[c[0] for c in MESSAGES]
)
def test_message_mistake_is_one_located_line(
    run_cli: RunCli,
    campaign_dir: Callable[..., Path],
    name: str,
    old: str,
    new: str,
    line: int,
    col: int,
    fragment: str,
) -> None:
    assert old in BASE_MESSAGES, name
    path = campaign_dir(messages={"main.yaml": BASE_MESSAGES.replace(old, new, 1)})
    (path.parent / "images").mkdir()
    (path.parent / "images" / "a.png").write_bytes(_png(2, 2))
    lines = validate(run_cli, path)
    one_line(lines, "main.yaml", line, col, fragment)


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _header(side: int) -> bytes:
    import struct

    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))


def _bomb_png() -> bytes:
    """A valid PNG header that claims 30000 x 30000 pixels (900 million)."""
    return _header(30000) + _chunk(b"IEND", b"")


def _png_with_bad_data(side: int, size: int) -> bytes:
    """A valid PNG header followed by ``size`` bytes of pixel data that do not decompress."""
    return _header(side) + _chunk(b"IDAT", b"\xff" * size) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("bomb.png", "too many pixels"),
        ("link.png", "is outside the campaign folder"),
        ("text.png", "is not an image amplifier can read"),
        ("photo.gif", "is a PNG image but its name says otherwise"),
    ],
)
def test_images_are_opened_at_validate_time(
    run_cli: RunCli, campaign_dir: Callable[..., Path], tmp_path: Path, name: str, fragment: str
) -> None:
    path = campaign_dir(
        messages={"main.yaml": BASE_MESSAGES.replace("hashtags: [Riseup4Rojava]", image(name))}
    )
    folder = path.parent
    (tmp_path / "secret.png").write_bytes(_png(2, 2))
    (folder / "bomb.png").write_bytes(_bomb_png())
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    (folder / "text.png").write_text("not an image")
    (folder / "photo.gif").write_bytes(_png(2, 2))
    lines = validate(run_cli, path)
    one_line(lines, "main.yaml", 5, 15, fragment)


def test_glob_through_a_symlink_loop_is_a_problem(run_cli: RunCli, campaign_dir: Callable[..., Path]) -> None:
    path = campaign_dir(schedule="messages: ['loop/**/*.yaml', 'messages/*.yaml']\n" + BASE_SCHEDULE)
    (path.parent / "loop").mkdir()
    (path.parent / "loop" / "again").symlink_to(path.parent / "loop")
    (path.parent / "outside.yaml").symlink_to(
        "/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd"
    )
    result = run_cli("validate", "--config", str(path), "--now", "2027-01-01")
    assert result.code in (0, 2), result.err
    assert "internal error" not in result.err


def test_message_file_linked_from_outside_is_refused(
    run_cli: RunCli, campaign_dir: Callable[..., Path], tmp_path: Path
) -> None:
    path = campaign_dir()
    (tmp_path / "elsewhere.yaml").write_text(BASE_MESSAGES.replace("countdown:", "other:"))
    (path.parent / "messages" / "z.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    lines = validate(run_cli, path)
    one_line(lines, "schedule.yaml", 1, 1, "z.yaml is outside the campaign folder")


def test_a_mistake_in_one_set_keeps_the_others(run_cli: RunCli, campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES + "  other:\n    varients: []\n"
    schedule = BASE_SCHEDULE + "  second:\n    kind: once\n    at: 2027-01-20T09:00\n    messages: other\n"
    lines = validate(run_cli, campaign_dir(schedule=schedule, messages={"main.yaml": messages}))
    assert len(lines) == 1, lines
    assert "main.yaml:10:5: unknown key 'varients' (did you mean 'variants'?)" in lines[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels deep"),
        ("".join("  " * i + f"k{i}:\n" for i in range(2000)), "nested more than 64 levels deep"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
                for i in range(9)
            ),
            "aliases (*name) repeat more than 10000 values",
        ),
    ],
    ids=["deep flow", "deep block", "billion laughs"],
)
def test_hostile_yaml_is_bounded(
    run_cli: RunCli, campaign_dir: Callable[..., Path], text: str, fragment: str
) -> None:
    started = time.monotonic()
    lines = validate(run_cli, campaign_dir(schedule=text))
    assert time.monotonic() - started < 10
    assert len(lines) == 1, lines
    assert fragment in lines[0], lines


def test_bytes_and_control_characters_are_located(run_cli: RunCli, campaign_dir: Callable[..., Path]) -> None:
    path = campaign_dir()
    path.write_bytes(BASE_SCHEDULE.encode().replace(b"Test campaign", b"Test \xff campaign"))
    lines = validate(run_cli, path)
    one_line(lines, "schedule.yaml", 2, 14, "not UTF-8 text: byte 0xff")
    path.write_bytes(BASE_SCHEDULE.encode().replace(b"Test campaign", b"Test \x07 campaign"))
    lines = validate(run_cli, path)
    one_line(lines, "schedule.yaml", 2, 14, "control character U+0007")


@pytest.mark.parametrize(
    ("old", "new", "line", "col"),
    [
        ("messages: countdown", 'messages: "count\\0down"', 25, 15),
        ("campaign:\n", 'messages: ["a\\0"]\ncampaign:\n', 1, 12),
        ("event: kobane-day", 'event: "k\\x01"', 22, 12),
    ],
)
def test_a_bad_character_in_a_name_is_not_also_an_unknown_name(
    run_cli: RunCli, campaign_dir: Callable[..., Path], old: str, new: str, line: int, col: int
) -> None:
    lines = validate(run_cli, campaign_dir(schedule=BASE_SCHEDULE.replace(old, new, 1)))
    one_line(lines, "schedule.yaml", line, col, "control character" if "x01" in new else "NUL character")


def test_a_huge_file_is_refused_without_reading_it_all(
    run_cli: RunCli, campaign_dir: Callable[..., Path]
) -> None:
    path = campaign_dir()
    with path.open("a") as file:
        file.write("# " + "x" * 6_000_000 + "\n")
    lines = validate(run_cli, path)
    one_line(lines, "schedule.yaml", 1, 1, "the file is larger than 5 MB")


def test_a_pipe_as_the_schedule_is_refused_without_blocking(run_cli: RunCli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "schedule.yaml")
    result = run_cli("validate", "--config", str(tmp_path / "schedule.yaml"))
    assert result.code == 2
    assert "not a regular file" in result.err


def test_a_bad_value_does_not_hide_a_missing_key_beside_it(
    run_cli: RunCli, campaign_dir: Callable[..., Path]
) -> None:
    schedule = BASE_SCHEDULE.replace("date: 2027-11-01", "date: 2027-02-30").replace(
        "    url: https://riseup4rojava.org/take-action/\n", ""
    )
    schedule = schedule.replace(
        "    name: {en: World Kobane Day, ku: Roja Cîhanî ya Kobanê, ckb: ڕۆژی جیهانیی کۆبانێ}\n", ""
    )
    lines = validate(run_cli, campaign_dir(schedule=schedule))
    assert len(lines) == 2, lines
    assert "missing required key 'name' in events.kobane-day" in lines[0]
    assert "2027-02-30 is not a date" in lines[1]


def test_images_that_cannot_be_uploaded_fail_validate(
    run_cli: RunCli, campaign_dir: Callable[..., Path], tmp_path: Path
) -> None:
    messages = BASE_MESSAGES.replace(
        "hashtags: [Riseup4Rojava]", image("big.png") + "\n      - path: broken.png\n        alt: B"
    )
    path = campaign_dir(messages={"main.yaml": messages})
    # Valid headers: one file over Mastodon's 16 MB (junk after the image), one whose pixel data is broken.
    (path.parent / "big.png").write_bytes(_png(2, 2) + bytes(17 * 1024 * 1024))
    (path.parent / "broken.png").write_bytes(_png_with_bad_data(1024, 1_100_000))
    lines = validate(run_cli, path)
    assert any(
        "main.yaml:5:15: big.png is 17.0 MB, over Mastodon's usual limit of 16 MB" in line for line in lines
    ), lines
    assert any(
        "main.yaml:7:15: broken.png cannot be read whole or made smaller than Bluesky's limit" in line
        for line in lines
    ), lines


def test_a_broken_rule_does_not_stop_the_checks_across_files(
    run_cli: RunCli, campaign_dir: Callable[..., Path]
) -> None:
    schedule = BASE_SCHEDULE.replace("days_before: [3, 2, 1]", "days_before: [3, two, 1]")
    schedule += "  other:\n    kind: once\n    at: 2027-01-20T09:00\n    messages: nope\n"
    lines = validate(run_cli, campaign_dir(schedule=schedule))
    assert len(lines) == 2, lines
    assert "schedule.yaml:23:22: rules.countdown.days_before.1: write a whole number" in lines[0]
    assert "schedule.yaml:29:15: rule 'other' names unknown message set 'nope'" in lines[1]


def test_a_broken_account_is_not_also_an_unknown_account(
    run_cli: RunCli, campaign_dir: Callable[..., Path]
) -> None:
    schedule = BASE_SCHEDULE.replace("instance: https://mastodon.example", "instance: mastodon.example")
    schedule = schedule.replace(
        "    messages: countdown\n", "    messages: countdown\n    accounts: [masto]\n"
    )
    lines = validate(run_cli, campaign_dir(schedule=schedule))
    one_line(lines, "schedule.yaml", 13, 15, "accounts.masto.instance: write the full address")
