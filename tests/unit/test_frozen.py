"""The fast constructor of the frozen dataclasses built once per post, and the slots' merge order it serves."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from amplifier.campaign.models import ScheduleFile
from amplifier.plan.frozen import frozen_factory, frozen_replacer
from amplifier.plan.post import Part, PlannedPost
from amplifier.plan.schedule import Slot, expand

AT = dt.datetime(2027, 10, 29, 18, tzinfo=dt.UTC)


def test_a_factory_post_is_the_post_the_class_builds() -> None:
    part = Part("text", 4, 500, {"status": "text"})
    values = ("r:a:k", AT, "r", "a", "mastodon", "en", (part,), "set", 2, "ev", ("too long",), "c:a:k", ())
    made = frozen_factory(PlannedPost)(*values)
    built = PlannedPost(*values)
    assert type(made) is PlannedPost
    assert made == built
    assert tuple(getattr(made, field.name) for field in dataclasses.fields(made)) == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.id = "other"  # type: ignore[misc]


def test_a_factory_slot_is_frozen_and_equal() -> None:
    made = frozen_factory(Slot)("r:a:k", "r", "a", AT, 3, None, 2, 48)
    assert made == Slot("r:a:k", "r", "a", AT, 3, None, 2, 48)
    assert hash(made) == hash(Slot("r:a:k", "r", "a", AT, 3, None, 2, 48))
    assert made.index == 3
    assert made.hours_left == 48
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.account = "b"  # type: ignore[misc]


def test_only_slotted_dataclasses() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain:
        value: int

    with pytest.raises(TypeError, match="Plain is not a slotted dataclass"):
        frozen_factory(Plain)


def test_slots_of_rules_at_one_instant_merge_in_id_order() -> None:
    """Occurrences are merged whole (by their first id): rule and account ids that prefix one another ("d", "d-2";
    "a", "a-b", "a1") must still come out in (instant, id) order."""
    accounts = {
        name: {"platform": "mastodon", "instance": "https://m.example", "token_env": "T"}
        for name in ("a", "a-b", "a1", "b")
    }
    rule = {
        "kind": "recurring",
        "cron": "0 18 * * *",
        "start": "2027-10-01",
        "end": "2027-10-03",
        "messages": "m",
    }
    schedule = ScheduleFile.model_validate(
        {
            "campaign": {"name": "t", "timezone": "UTC"},
            "accounts": accounts,
            "rules": {
                "d": rule,
                "d-2": rule,
                "d2": {**rule, "accounts": ["a1", "a-b"]},
                "e": {"kind": "once", "at": "2027-10-02T18:00", "messages": "m"},
            },
        }
    )
    slots = expand(schedule, AT - dt.timedelta(days=40), AT)
    assert [(s.at, s.id) for s in slots] == sorted((s.at.astimezone(dt.UTC), s.id) for s in slots)
    assert len(slots) == 3 * (4 + 4 + 2) + 4


def test_a_replacer_copy_is_what_replace_gives() -> None:
    from amplifier.plan.adapt import Content

    prototype = Content(texts=(), lang="de", hashtags=("Kobane",), split=False, labels=("graphic-media",))
    made = frozen_replacer(prototype)(texts=("Hallo",), content_warning="cw")
    assert type(made) is Content
    assert made == dataclasses.replace(prototype, texts=("Hallo",), content_warning="cw")
    assert hash(made) == hash(dataclasses.replace(prototype, texts=("Hallo",), content_warning="cw"))
    assert prototype.texts == ()  # the prototype is left as it was
    assert prototype.content_warning is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.lang = "en"  # type: ignore[misc]
    with pytest.raises(TypeError, match="Content has no field 'colour'"):
        frozen_replacer(prototype)(colour="red")


def test_a_replacer_only_for_plain_dataclasses() -> None:
    with pytest.raises(TypeError, match="PlannedPost is not a dataclass without slots"):
        frozen_replacer(PlannedPost("i", AT, "r", "a", "mastodon", "en", (), "s", 0))
