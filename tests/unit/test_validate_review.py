"""What validate catches beyond the files' shape: posts that would go out wrong, warnings, finished rules, and every
problem in one run."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from amplifier.campaign.load import load_campaign
from amplifier.plan.planner import plan_window
from amplifier.plan.stream import validate
from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE, Result

UTC = dt.UTC
NOW = "2027-01-01T00:00:00+00:00"
WINDOW = (dt.datetime(2027, 1, 1, tzinfo=UTC), dt.datetime(2028, 1, 1, tzinfo=UTC))

RECURRING = """\
  weekly:
    kind: recurring
    cron: "0 18 * * 5"
    start: 2027-10-01
    end: 2027-11-30
    event: kobane-day
    messages: weekly
"""

WEEKLY_SET = """\
  weekly:
    variants:
      - text:
          en: "In {{ days_left }} days: {{ event.name }}. {{ days_left | duration }} to go."
"""


def lines_of(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.strip()]


def located(line: str) -> tuple[str, int, int, str]:
    match = re.match(r"^(.*?):(\d+):(\d+): (.*)$", line)
    assert match, line
    file, at_line, col, message = match.groups()
    return Path(file).name, int(at_line), int(col), message


def test_a_recurring_rule_tied_to_an_event_ends_at_the_event(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    path = campaign_dir(BASE_SCHEDULE + RECURRING, {"main.yaml": BASE_MESSAGES + WEEKLY_SET})
    posts = [p for p in plan_window(load_campaign(path), *WINDOW).posts if p.rule == "weekly"]
    assert posts
    assert all(p.at < dt.datetime(2027, 11, 2, tzinfo=UTC) for p in posts)  # the event is all day on Nov 1
    assert not any("-" in p.parts[0].text.split(":")[0] for p in posts)  # never "In -7 days"
    result = run_cli("validate", "-c", str(path), "--now", NOW)
    assert result.code == 0, result.err
    (warning,) = lines_of(result)
    assert located(warning) == (
        "schedule.yaml",
        30,
        10,
        "warning: rule 'weekly' runs until 2027-11-30, past its event 'kobane-day' (2027-11-01): it stops at the "
        "event (a rule tied to an event never counts down to a day that has passed)",
    )


def test_duration_of_a_negative_value_is_an_error_not_a_lost_sign(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    schedule = BASE_SCHEDULE + (
        "  after:\n    kind: once\n    at: 2027-11-08T10:00\n    event: kobane-day\n    messages: weekly\n"
    )
    path = campaign_dir(schedule, {"main.yaml": BASE_MESSAGES + WEEKLY_SET})
    result = run_cli("validate", "-c", str(path), "--now", NOW)
    assert result.code == 2
    (line,) = lines_of(result)
    file, at_line, _col, message = located(line)
    assert (file, at_line) == ("main.yaml", 12)
    assert message.startswith(
        "template error: duration of a negative value (-7): the post is after its event"
    )


def test_a_template_inside_a_plural_form_is_a_located_error(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    messages = BASE_MESSAGES.replace("one='# day'", "one='# day until {{ event.name }}'")
    result = run_cli("validate", "-c", str(campaign_dir(messages={"main.yaml": messages})), "--now", NOW)
    assert result.code == 2
    (line,) = lines_of(result)
    file, at_line, _col, message = located(line)
    assert (file, at_line) == ("main.yaml", 6)
    assert message.startswith(
        "plural(one=...): a form is posted as written, so {{ ... }} inside it would be posted"
    )


def test_zero_form_is_used_for_zero_in_english(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE.replace("days_before: [3, 2, 1]", "days_before: [1, 0]")
    messages = BASE_MESSAGES.replace("plural(one='# day'", "plural(zero='Today is the day', one='# day'")
    posts = plan_window(load_campaign(campaign_dir(schedule, {"main.yaml": messages})), *WINDOW).posts
    texts = [p.parts[0].text.splitlines()[0] for p in posts if p.account == "masto"]
    assert texts[0] == "1 day until World Kobane Day."
    assert texts[1].startswith("World Kobane Day is in 0 days")  # the second variant
    schedule = BASE_SCHEDULE.replace("days_before: [3, 2, 1]", "days_before: [0]")
    posts = plan_window(load_campaign(campaign_dir(schedule, {"main.yaml": messages})), *WINDOW).posts
    assert posts[0].parts[0].text.startswith("Today is the day until World Kobane Day.")


def test_event_in_a_rule_without_an_event_names_the_rule(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    schedule = BASE_SCHEDULE + "  call:\n    kind: once\n    at: 2027-03-01T10:00\n    messages: call\n"
    messages = BASE_MESSAGES + (
        "  call:\n    variants:\n      - text:\n"
        '          en: "{% if event %}ignored{% endif %}Join us for {{ event.name }}."\n'
    )
    result = run_cli("validate", "-c", str(campaign_dir(schedule, {"main.yaml": messages})), "--now", NOW)
    assert result.code == 2
    (line,) = lines_of(result)
    file, at_line, _col, message = located(line)
    assert (file, at_line) == ("main.yaml", 57 - 45)
    assert message == (
        "template error: rule 'call' has no event, so event has no value: give the rule an event (event: ...) or "
        "test it first: {% if event %}...{% endif %}"
    )


def test_if_event_still_guards_a_rule_without_an_event(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE + "  call:\n    kind: once\n    at: 2027-03-01T10:00\n    messages: call\n"
    messages = BASE_MESSAGES + (
        "  call:\n    variants:\n      - text:\n"
        '          en: "Join us{% if event %} for {{ event.name }} in {{ days_left }} days{% endif %}."\n'
    )
    plan = plan_window(load_campaign(campaign_dir(schedule, {"main.yaml": messages})), *WINDOW)
    assert plan.problems == []
    assert {p.parts[0].text.splitlines()[0] for p in plan.posts if p.rule == "call"} == {"Join us."}


def test_warnings_are_located_and_exit_zero(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    schedule = BASE_SCHEDULE + (
        '  never:\n    kind: recurring\n    cron: "0 18 * 12 *"\n    start: 2027-01-01\n    end: 2027-11-30\n'
        "    messages: plain\n"
        '  minutes:\n    kind: recurring\n    cron: "* 18 * * 3,6"\n    start: 2027-06-01\n    end: 2027-10-31\n'
        "    messages: plain\n"
    )
    messages = (
        BASE_MESSAGES.replace(
            '          en: "{{ event.name }} is in',
            '          de: "Nie."\n          en: "{{ event.name }} is in',
        )
        + '  plain:\n    variants:\n      - text:\n          en: "Talk about it."\n'
        + '  spare:\n    variants:\n      - text:\n          en: "Nobody posts this."\n'
    )
    path = campaign_dir(schedule, {"main.yaml": messages})
    result = run_cli("validate", "-c", str(path), "--now", NOW)
    assert result.code == 0, result.err
    warnings = [located(line) for line in lines_of(result)]
    assert warnings == [
        (
            "main.yaml",
            8,
            11,
            "warning: the 'de' texts of message set 'countdown' are never posted: no account of its rules posts in "
            "'de' (they post in: en)",
        ),
        ("main.yaml", 14, 3, "warning: message set 'spare' is used by no rule"),
        (
            "schedule.yaml",
            28,
            11,
            "warning: rule 'never' plans no post: its cron '0 18 * 12 *' never fires between 2027-01-01 and "
            "2027-11-30",
        ),
        (
            "schedule.yaml",
            34,
            11,
            "warning: rule 'minutes' posts up to 60 times a day on each of its accounts (2,640 posts in all), more "
            "than 24 a day; its minute field is * (every minute): write 0 for once in the hour",
        ),
    ]
    assert ", 4 warnings" in result.out


def test_validate_carries_the_warnings(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES + '  spare:\n    variants:\n      - text:\n          en: "Nobody posts this."\n'
    plan = validate(load_campaign(campaign_dir(messages={"main.yaml": messages})), WINDOW[0])
    assert [w.message for w in plan.warnings] == ["message set 'spare' is used by no rule"]


def test_load_and_render_problems_of_different_files_in_one_run(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    schedule = BASE_SCHEDULE + "  call:\n    kind: once\n    at: 2027-03-01T10:00\n    messages: call\n"
    broken = "sets:\n  call:\n    variantz: []\n"  # a load-time problem in one file
    rendering = BASE_MESSAGES.replace("{{ event.name }}.", "{{ event.nam }}.")  # a render-time one in another
    path = campaign_dir(schedule, {"broken.yaml": broken, "main.yaml": rendering})
    result = run_cli("validate", "-c", str(path), "--now", NOW)
    assert result.code == 2
    found = [(*located(line)[:2], located(line)[3].split(" (")[0]) for line in lines_of(result)]
    assert ("broken.yaml", 3, "unknown key 'variantz'") in found
    assert ("main.yaml", 6, "template error: the value has no attribute 'nam'") in found


def test_an_attribute_of_a_text_is_named_in_words(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    messages = BASE_MESSAGES.replace("{{ event.name }}.", "{{ event.name.first }}.")
    result = run_cli("validate", "-c", str(campaign_dir(messages={"main.yaml": messages})), "--now", NOW)
    assert result.code == 2
    (line,) = lines_of(result)
    assert located(line)[3] == "template error: the text has no attribute 'first'"
