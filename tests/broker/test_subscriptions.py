"""The subscription index behind delivery (fault 8): same answers as testing every
filter, without looking at filters that cannot match."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.subscriptions import SubscriptionTable
from credbroker.topics import matches

LEVEL = st.sampled_from(["a", "b", "dev-1", "+", "#", "$SYS"])


def _filters() -> st.SearchStrategy[str]:
    return st.lists(LEVEL, min_size=1, max_size=4).map("/".join)


@given(
    st.lists(_filters(), max_size=30),
    st.lists(st.sampled_from(["a", "b", "dev-1", "$SYS"]), min_size=1, max_size=4).map("/".join),
)
def test_candidates_hold_every_matching_filter(filters: list[str], topic: str) -> None:
    table = SubscriptionTable()
    for topic_filter in filters:
        table[topic_filter] = [("session", 1)]
    candidates = {f for f, _ in table.candidates(topic)}
    wanted = {f for f in filters if matches(f, topic)}
    assert wanted <= candidates
    assert all("+" in f or "#" in f or f == topic for f in candidates)


def test_removed_filters_are_not_candidates() -> None:
    table = SubscriptionTable()
    table["devices/+/cmd"] = []
    table["devices/d1/cmd"] = []
    del table["devices/+/cmd"]
    assert [f for f, _ in table.candidates("devices/d1/cmd")] == ["devices/d1/cmd"]
    table.clear()
    table["x"] = []
    assert list(table.candidates("devices/d1/cmd")) == []
