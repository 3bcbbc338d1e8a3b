"""MQTT 3.1.1 section 4.7 topic semantics: matching and filter containment."""

from __future__ import annotations

import pytest

from credbroker.claims import expand_filters, parse_kid
from credbroker.topics import contains, is_valid_filter, is_valid_topic, matches


@pytest.mark.parametrize(
    ("filter_", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),  # section 4.7.1.2: `#` includes the parent level
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),  # section 4.7.2
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/+/c", "a//c", True),
        ("+", "/a", False),
    ],
)
def test_matches(filter_: str, topic: str, expected: bool) -> None:
    assert matches(filter_, topic) is expected


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("devices/d1/#", "devices/d1/+", True),
        ("devices/d1/#", "devices/d1/#", True),
        ("devices/d1/#", "devices/d1", True),
        ("devices/d1/#", "devices/+/x", False),
        ("devices/+/x", "devices/d1/x", True),
        ("devices/+/x", "devices/+/x", True),
        ("devices/+/x", "devices/#", False),
        ("devices/d1/x", "devices/+/x", False),
        ("a/+", "a/+/b", False),
        ("#", "a/#", True),
        ("#", "$SYS/#", False),
        ("+/#", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker/+", True),
    ],
)
def test_contains(outer: str, inner: str, expected: bool) -> None:
    assert contains(outer, inner) is expected


def test_filter_and_topic_validation() -> None:
    assert is_valid_filter("a/+/#") and is_valid_filter("#") and is_valid_filter("+")
    assert not is_valid_filter("a/#/b") and not is_valid_filter("a/b#")
    assert not is_valid_filter("a+") and not is_valid_filter("") and not is_valid_filter("a\0")
    assert is_valid_topic("a/b") and not is_valid_topic("a/+") and not is_valid_topic("#")


def test_placeholders_and_kids() -> None:
    assert expand_filters(["f/{fleet}/d/{device_id}/#"], device_id="d1", fleet="x") == [
        "f/x/d/d1/#"
    ]
    assert parse_kid("dev-1#3") == ("dev-1", 3)
    assert parse_kid("dev-1") is None and parse_kid("a/b#1") is None and parse_kid("x#") is None
