"""MQTT topic names and filters, by MQTT 3.1.1 section 4.7.

Standard library only. `matches` answers whether a PUBLISH topic is allowed by a
filter; `contains` whether every topic a SUBSCRIBE filter could match is also
matched by an ACL filter (containment, not string comparison).
"""

from __future__ import annotations

MAX_TOPIC_BYTES = 65_535  # MQTT 3.1.1 section 1.5.3


def is_valid_filter(value: str) -> bool:
    """MQTT 3.1.1 section 4.7.1: `#` last and alone in its level, `+` alone in its level."""
    if not value or "\x00" in value or len(value.encode()) > MAX_TOPIC_BYTES:
        return False
    levels = value.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def is_valid_topic(value: str) -> bool:
    """A topic name for PUBLISH: no wildcards (MQTT 3.1.1 section 4.7.3)."""
    return bool(value) and is_valid_filter(value) and "+" not in value and "#" not in value


def matches(filter_: str, topic: str) -> bool:
    """True if `topic` (a name) is matched by `filter_`.

    MQTT 3.1.1 section 4.7.2: a filter starting with a wildcard does not match a topic
    starting with `$`.
    """
    if topic.startswith("$") and filter_[:1] in ("+", "#"):
        return False
    f_levels = filter_.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True  # `#` also matches the parent level (section 4.7.1.2)
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def contains(outer: str, inner: str) -> bool:
    """True if every topic matched by filter `inner` is matched by filter `outer`."""
    if inner.startswith("$") and outer[:1] in ("+", "#"):
        return False  # wildcards never match a `$` first level (section 4.7.2)
    o_levels = outer.split("/")
    i_levels = inner.split("/")
    for idx, o in enumerate(o_levels):
        if o == "#":
            return True
        if idx >= len(i_levels):
            return False
        i = i_levels[idx]
        if i == "#":
            return False  # inner reaches deeper or wider than a non-`#` outer level
        if o == "+":
            continue
        if i == "+" or i != o:
            return False
    return len(o_levels) == len(i_levels)


def any_matches(filters: list[str] | tuple[str, ...], topic: str) -> bool:
    return any(matches(f, topic) for f in filters)


def any_contains(filters: list[str] | tuple[str, ...], inner: str) -> bool:
    return any(contains(f, inner) for f in filters)
