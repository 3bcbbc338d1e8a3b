"""Delivery inside the broker: the subscription index (fault 8) gives the same answers as
testing every filter; an ended connection leaves no waiter behind (fault 10); the slim
queue and event (slim.py) wait as asyncio's do."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from broker.handler import DISCONNECTED, RECEIVED, CredHandler
from broker.session import CredSession
from broker.slim import SlimEvent, SlimQueue
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


def test_an_ended_connection_leaves_no_delivery_waiter_on_the_session() -> None:
    """Fault 10: a persistent session's connections share one delivery queue; the loop
    of an ended connection must not take the next connection's first message."""

    async def scenario() -> tuple[object, object]:
        loop = asyncio.get_running_loop()
        session = CredSession()
        old, new = CredHandler(None, session=session), CredHandler(None, session=session)
        old._disconnect_waiter = loop.create_future()  # what start() makes
        new._disconnect_waiter = loop.create_future()
        old_work = asyncio.ensure_future(old.next_work())
        await asyncio.sleep(0)  # the old connection's loop is waiting
        await old.handle_connection_closed()  # the old connection ends
        ended = await asyncio.wait_for(old_work, 5)
        old.stop_waiting_for_messages()  # what the broker does when that connection ends
        current = asyncio.ensure_future(new.next_work())
        await asyncio.sleep(0)
        session.delivered_message_queue.put_nowait("first after the reconnect")
        return ended, await asyncio.wait_for(current, 5)

    assert asyncio.run(scenario()) == (
        (DISCONNECTED, None),
        (RECEIVED, "first after the reconnect"),
    )


def test_a_slim_queue_hands_on_an_item_its_cancelled_getter_was_woken_for() -> None:
    """SlimQueue waits as asyncio.Queue does: items in order, and a getter cancelled after
    an item woke it (a connection ending at that moment) leaves the item to the next."""

    async def scenario() -> list[str]:
        queue: SlimQueue[str] = SlimQueue()
        first = asyncio.ensure_future(queue.get())
        second = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)  # both are waiting
        queue.put_nowait("a")  # wakes the first
        first.cancel()  # before it ran again
        queue.put_nowait("b")
        got = [await asyncio.wait_for(second, 5), await asyncio.wait_for(queue.get(), 5)]
        return [*got, str(queue.qsize()), str(first.cancelled())]

    assert asyncio.run(scenario()) == ["a", "b", "0", "True"]


def test_a_slim_event_wakes_every_waiter_and_stays_set() -> None:
    async def scenario() -> list[bool]:
        event = SlimEvent()
        waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        event.set()
        return [*await asyncio.wait_for(asyncio.gather(*waiters), 5), await event.wait()]

    assert asyncio.run(scenario()) == [True, True, True, True]
