"""MQTT 5.0 delivery on the embedded broker (issue 15): properties passing through,
message expiry, subscription options, topic aliases, shared subscriptions, flow control,
the Maximum Packet Size, session expiry and will delay, on raw sockets with the `mqtt5`
codec (each packet as it comes) against a real `credbroker up` (README, MQTT 5.0).

Where a test must show that something did not arrive, a marker message sent after it
arrives first: delivery to one connection is in order (MQTT 5.0 section 4.6)."""

from __future__ import annotations

import time
from typing import Any

import mqtt5

from tests.broker.wire5 import Raw5, qos
from tests.stack import Client, Stack, wait_for

_R = mqtt5.SubAckReasonCode


def _pair(stack: Stack, **acl: list[str]) -> tuple[str, Any, Any]:
    fleet = stack.fleet(**acl)
    return fleet, stack.device(fleet), stack.device(fleet)


def _up(fleet: str, device: Any) -> str:
    return f"fleets/{fleet}/up/{device.id}"


def _publishes(client: Raw5, count: int) -> list[mqtt5.PublishPacket]:
    """The next `count` PUBLISHes, each acknowledged; other packets skipped."""
    got: list[mqtt5.PublishPacket] = []
    while len(got) < count:
        packet = client.next()
        assert packet is not None, f"connection closed after {got}"
        if isinstance(packet, mqtt5.PublishPacket):
            got.append(packet)
            if packet.qos == qos(1):
                client.send(mqtt5.PubAckPacket(packet.packet_id))
            elif packet.qos == qos(2):
                client.send(mqtt5.PubRecPacket(packet.packet_id))
        elif isinstance(packet, mqtt5.PubRelPacket):
            client.send(mqtt5.PubCompPacket(packet.packet_id))
    return got


def _publish(
    client: Raw5, packet_id: int, topic: str, payload: bytes, level: int, **kw: Any
) -> None:
    """A PUBLISH at `level`, its flow completed up to its acknowledgement."""
    client.send(
        mqtt5.PublishPacket(
            topic, payload, qos=qos(level), packet_id=packet_id if level else None, **kw
        )
    )
    if level == 0:
        return
    if level == 2:
        answer = client.expect(mqtt5.PubRecPacket)
        assert isinstance(answer, mqtt5.PubRecPacket), answer
        client.send(mqtt5.PubRelPacket(packet_id))
        answer = client.expect(mqtt5.PubCompPacket)
        assert isinstance(answer, mqtt5.PubCompPacket), answer
    else:
        answer = client.expect(mqtt5.PubAckPacket)
        assert isinstance(answer, mqtt5.PubAckPacket), answer


def test_publish_properties_reach_5_0_subscribers_at_every_qos_and_retained(
    stack: Stack,
) -> None:
    fleet, sender, receiver = _pair(stack)
    pub = Raw5(stack, sender.id, sender.token())
    sub = Raw5(stack, receiver.id, receiver.token())
    old = stack.device(fleet)
    plain = Client(stack, old.id, old.token())
    try:
        pub.connack()
        sub.connack()
        assert plain.connected.wait(10)
        plain.subscribe(f"fleets/{fleet}/up/+", qos=1)
        sub.subscribe(1, mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=qos(2)))
        said = {
            "payload_format_indicator": 1,
            "content_type": "application/json",
            "response_topic": f"devices/{sender.id}/reply",
            "correlation_data": b"\x00\x01req",
            "user_properties": [("a", "2"), ("c", "3"), ("a", "again")],
        }
        for level in (0, 1, 2):
            _publish(pub, 10 + level, _up(fleet, sender), f"qos {level}".encode(), level, **said)
        got = _publishes(sub, 3)
        assert sorted(p.payload for p in got) == [b"qos 0", b"qos 1", b"qos 2"]
        for packet in got:
            assert packet.payload_format_indicator == 1
            assert packet.content_type == "application/json"
            assert packet.response_topic == f"devices/{sender.id}/reply"
            assert packet.correlation_data == b"\x00\x01req"
            assert packet.user_properties == [("a", "2"), ("c", "3"), ("a", "again")]
        wait_for(lambda: len(plain.messages) == 3, what="the 3.1.1 subscriber's copies")
        assert sorted(p for _, p, _ in plain.messages) == [b"qos 0", b"qos 1", b"qos 2"]
        # A retained message keeps its properties for later subscribers.
        _publish(pub, 20, _up(fleet, sender), b"kept", 1, retain=True, **said)
        _publishes(sub, 1)
        later = Raw5(stack, receiver.id, receiver.token())  # takes the session over
        later.connack()
        later.subscribe(2, mqtt5.TopicFilter(_up(fleet, sender), max_qos=qos(1)))
        (retained,) = _publishes(later, 1)
        assert retained.retain and retained.payload == b"kept"
        assert retained.user_properties == said["user_properties"]
        assert retained.content_type == "application/json"
        _publish(pub, 21, _up(fleet, sender), b"", 1, retain=True)  # clears it
        later.close()
    finally:
        pub.close()
        sub.close()
        plain.close()


def test_an_expired_message_is_not_delivered_and_the_rest_carry_the_time_left(
    stack: Stack,
) -> None:
    """MQTT 5.0 section 3.3.2.3.3, for an offline session's queue."""
    fleet, sender, receiver = _pair(stack)
    topic = _up(fleet, sender)
    sub = Raw5(stack, receiver.id, receiver.token(), session_expiry_interval=300)
    sub.connack()
    sub.subscribe(1, mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=qos(1)))
    sub.send(mqtt5.DisconnectPacket())
    sub.close()
    pub = Raw5(stack, sender.id, sender.token())
    pub.connack()
    expiry = time.monotonic() + 1
    _publish(pub, 1, topic, b"short", 1, message_expiry_interval=1)
    _publish(pub, 2, topic, b"long", 1, message_expiry_interval=300)
    pub.close()
    _past(expiry + 0.2)
    back = Raw5(
        stack, receiver.id, receiver.token(), clean_start=False, session_expiry_interval=300
    )
    try:
        assert back.connack().session_present
        (only,) = _publishes(back, 1)
        assert only.payload == b"long"
        assert only.message_expiry_interval is not None and only.message_expiry_interval <= 300
    finally:
        back.close()


def _past(deadline: float) -> None:
    """Until the clock passes `deadline` (time.monotonic()): what expiry tests wait for
    is the clock itself, not the broker."""
    time.sleep(max(0.0, deadline - time.monotonic()))


def test_no_local_and_retain_as_published(stack: Stack) -> None:
    """MQTT 5.0 section 3.8.3.1: a No Local subscription gets none of its own client's
    messages; Retain As Published keeps the RETAIN flag a live message was sent with."""
    fleet, device, other = _pair(stack)
    topic = _up(fleet, device)
    client = Raw5(stack, device.id, device.token())
    peer = Raw5(stack, other.id, other.token())
    try:
        client.connack()
        peer.connack()
        local = mqtt5.TopicFilter(topic, max_qos=qos(1), no_local=True)
        kept = mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=qos(1), retain_as_published=True)
        client.subscribe(1, local)
        peer.subscribe(1, kept)
        _publish(client, 2, topic, b"mine", 1)
        _publish(client, 3, topic, b"retained", 1, retain=True)
        # `client` gets neither of its own two messages: the first it gets is peer's.
        _publish(peer, 4, f"devices/{other.id}/x", b"not for anyone", 0)
        theirs = _publishes(peer, 2)
        assert [(p.payload, p.retain) for p in theirs] == [(b"mine", False), (b"retained", True)]
        client.subscribe(5, mqtt5.TopicFilter(f"devices/{device.id}/marker", max_qos=qos(1)))
        _publish(client, 6, f"devices/{device.id}/marker", b"marker", 1)
        (first,) = _publishes(client, 1)
        assert first.payload == b"marker"
        _publish(client, 7, topic, b"", 1, retain=True)
    finally:
        client.close()
        peer.close()


def test_retain_handling_sends_retained_messages_as_the_subscription_asks(stack: Stack) -> None:
    fleet, device, _ = _pair(stack)
    topic = _up(fleet, device)
    client = Raw5(stack, device.id, device.token())
    try:
        client.connack()
        _publish(client, 1, topic, b"retained", 1, retain=True)
        marker = f"devices/{device.id}/marker"
        client.subscribe(2, mqtt5.TopicFilter(marker, max_qos=qos(1)))

        def subscribe_then_mark(packet_id: int, handling: mqtt5.RetainHandling) -> list[bytes]:
            wanted = mqtt5.TopicFilter(topic, max_qos=qos(1), retain_handling=handling)
            client.subscribe(packet_id, wanted)
            _publish(client, packet_id + 1, marker, b"marker", 1)
            got = []
            while not got or got[-1] != b"marker":
                got.append(_publishes(client, 1)[0].payload)
            return got

        handling = mqtt5.RetainHandling
        assert subscribe_then_mark(10, handling.SEND_IF_SUBSCRIPTION_NOT_EXISTS) == [
            b"retained",
            b"marker",
        ]
        assert subscribe_then_mark(20, handling.SEND_IF_SUBSCRIPTION_NOT_EXISTS) == [b"marker"]
        assert subscribe_then_mark(30, handling.SEND_NEVER) == [b"marker"]
        assert subscribe_then_mark(40, handling.SEND_ALWAYS) == [b"retained", b"marker"]
        _publish(client, 50, topic, b"", 1, retain=True)
    finally:
        client.close()


def test_each_copy_carries_the_identifier_of_the_subscription_it_matched(stack: Stack) -> None:
    """MQTT-3.3.4-5: overlapping subscriptions each bring their own copy, with their own
    Subscription Identifier; a retained message sent at SUBSCRIBE carries it too."""
    device = stack.device(stack.fleet())
    topic = f"devices/{device.id}/t"
    client = Raw5(stack, device.id, device.token())
    try:
        client.connack()
        _publish(client, 1, topic, b"retained", 1, retain=True)
        client.send(mqtt5.SubscribePacket(2, [mqtt5.TopicFilter(topic)], subscription_id=2))
        (retained,) = _publishes(client, 1)
        assert retained.payload == b"retained" and retained.subscription_ids == [2]
        wide = mqtt5.TopicFilter(f"devices/{device.id}/#", retain_handling=mqtt5.RetainHandling(2))
        client.send(mqtt5.SubscribePacket(3, [wide], subscription_id=3))
        client.expect(mqtt5.SubAckPacket)
        _publish(client, 4, topic, b"live", 1)
        copies = _publishes(client, 2)
        assert sorted(p.subscription_ids for p in copies) == [[2], [3]]
        _publish(client, 5, topic, b"", 1, retain=True)
    finally:
        client.close()


def test_client_topic_aliases_are_resolved_and_bad_ones_disconnect(stack: Stack) -> None:
    """Section 3.3.2.3.4: the CONNACK's Topic Alias Maximum is 16."""
    device = stack.device(stack.fleet())
    topic = f"devices/{device.id}/aliased"
    client = Raw5(stack, device.id, device.token())
    try:
        assert client.connack().topic_alias_max == 16
        client.subscribe(1, mqtt5.TopicFilter(topic, max_qos=qos(1)))
        _publish(client, 2, topic, b"set", 1, topic_alias=3)
        _publish(client, 3, "", b"used", 1, topic_alias=3)
        got = _publishes(client, 2)
        assert [(p.topic, p.payload) for p in got] == [(topic, b"set"), (topic, b"used")]
        assert all(p.topic_alias is None for p in got)  # the server sends none
        client.send(mqtt5.PublishPacket("", b"x", qos=qos(1), packet_id=4, topic_alias=17))
        answer = client.next()
        assert isinstance(answer, mqtt5.DisconnectPacket), answer
        assert answer.reason_code == mqtt5.DisconnectReasonCode.TOPIC_ALIAS_INVALID
    finally:
        client.close()


def test_a_shared_subscription_gives_each_message_to_one_member_within_the_acl(
    stack: Stack,
) -> None:
    """Section 4.8.2: `$share/{group}/{filter}`, the ACL applied to the filter."""
    fleet, one, two = _pair(stack)
    sender = stack.device(fleet)
    members = [Raw5(stack, d.id, d.token()) for d in (one, two)]
    pub = Raw5(stack, sender.id, sender.token())
    try:
        pub.connack()
        shared = f"$share/workers/fleets/{fleet}/up/+"
        for index, member in enumerate(members):
            member.connack()
            granted = member.subscribe(
                1,
                mqtt5.TopicFilter(shared, max_qos=qos(1)),
                mqtt5.TopicFilter("$share/workers/elsewhere/#", max_qos=qos(1)),
                mqtt5.TopicFilter(f"devices/{(one, two)[index].id}/marker", max_qos=qos(1)),
            )
            one_ok = _R.GRANTED_QOS_AT_LEAST_ONCE
            assert granted.reason_codes == [one_ok, _R.NOT_AUTHORIZED, one_ok]
        for n in range(6):
            _publish(pub, 10 + n, _up(fleet, sender), f"job {n}".encode(), 1)
        received: list[list[bytes]] = []
        for member, device in zip(members, (one, two), strict=True):
            _publish(member, 30, f"devices/{device.id}/marker", b"marker", 1)
            received.append([])
            while (payload := _publishes(member, 1)[0].payload) != b"marker":
                received[-1].append(payload)
        assert sorted(received[0] + received[1]) == [f"job {n}".encode() for n in range(6)]
        assert [len(r) for r in received] == [3, 3]  # in turn
    finally:
        pub.close()
        for member in members:
            member.close()


def test_the_client_receive_maximum_bounds_unacknowledged_publishes(stack: Stack) -> None:
    """Section 4.9: with Receive Maximum 2 the third QoS 1 message waits for a PUBACK
    (a QoS 0 marker sent after it overtakes it: QoS 0 is not counted)."""
    fleet, device, sender = _pair(stack)
    client = Raw5(stack, device.id, device.token(), receive_max=2)
    pub = Raw5(stack, sender.id, sender.token())
    try:
        client.connack()
        pub.connack()
        client.subscribe(1, mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=qos(1)))
        for n in range(3):
            _publish(pub, 10 + n, _up(fleet, sender), f"m{n}".encode(), 1)
        _publish(pub, 0, _up(fleet, sender), b"marker", 0)
        got = [client.expect(mqtt5.PublishPacket) for _ in range(3)]
        assert [p.payload for p in got] == [b"m0", b"m1", b"marker"]
        client.send(mqtt5.PubAckPacket(got[0].packet_id))
        third = client.expect(mqtt5.PublishPacket)
        assert third.payload == b"m2"
    finally:
        client.close()
        pub.close()


def test_more_unacknowledged_qos_2_publishes_than_the_receive_maximum_disconnect(
    stack: Stack,
) -> None:
    device = stack.device(stack.fleet())
    client = Raw5(stack, device.id, device.token())
    try:
        allowed = client.connack().receive_max
        assert allowed == 100
        topic = f"devices/{device.id}/t"
        for packet_id in range(1, allowed + 2):  # no PUBREL for any of them
            client.send(mqtt5.PublishPacket(topic, b"x", qos=qos(2), packet_id=packet_id))
        answer = client.expect(mqtt5.DisconnectPacket)
        assert answer.reason_code == mqtt5.DisconnectReasonCode.RECEIVE_MAX_EXCEEDED
    finally:
        client.close()


def test_a_message_over_the_client_maximum_packet_size_is_not_sent(stack: Stack) -> None:
    """Section 3.1.2.11.4: the server discards it as if sent; smaller ones still come."""
    device = stack.device(stack.fleet())
    topic = f"devices/{device.id}/t"
    client = Raw5(stack, device.id, device.token(), max_packet_size=128)
    try:
        client.connack()
        client.subscribe(1, mqtt5.TopicFilter(topic, max_qos=qos(1)))
        _publish(client, 2, topic, b"x" * 200, 1)
        _publish(client, 3, topic, b"small", 1)
        assert client.expect(mqtt5.PublishPacket).payload == b"small"
    finally:
        client.close()


def test_a_qos_2_publish_outside_the_acl_gets_pubrec_0x87_and_the_flow_ends(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    client = Raw5(stack, device.id, device.token())
    try:
        client.connack()
        client.send(mqtt5.PublishPacket("elsewhere/x", b"no", qos=qos(2), packet_id=7))
        answer = client.expect(mqtt5.PubRecPacket)
        assert answer.reason_code == mqtt5.PubRecReasonCode.NOT_AUTHORIZED
        assert answer.reason_str == "topic not in the device's publish ACL"
        # No PUBREL follows a refusal (section 4.3.3); the id is free for the next one.
        _publish(client, 7, f"devices/{device.id}/t", b"yes", 2)
    finally:
        client.close()


def test_a_refused_publish_says_why_unless_the_client_asked_for_no_problem_information(
    stack: Stack,
) -> None:
    """PUBACK 0x87 with a Reason String (MQTT 5.0 section 3.4.2.2.2), for a `$` topic too,
    which no ACL holds; none when Request Problem Information is 0 (section 3.1.2.11.7).
    The Paho suite's codec takes no properties on PUBACK (test_paho_interop5.py)."""
    device = stack.device(stack.fleet(publish=["#"], subscribe=["#"]))
    for asked, said in ((True, "topic not in the device's publish ACL"), (False, None)):
        client = Raw5(stack, device.id, device.token(), request_problem_info=asked)
        try:
            client.connack()
            client.send(mqtt5.PublishPacket("$TopicA/B", b"x", qos=qos(1), packet_id=1))
            answer = client.expect(mqtt5.PubAckPacket)
            assert answer.reason_code == mqtt5.PubAckReasonCode.NOT_AUTHORIZED
            assert answer.reason_str == said
        finally:
            client.close()


def test_refusals_say_which_rule_in_a_reason_string(stack: Stack) -> None:
    """To the holder of a real token the rule; to a guess only "bad credentials"."""
    device = stack.device(stack.fleet())
    for who in (device.id, "d-nobody"):  # unknown devices alike
        guess = Raw5(stack, who, "garbage")
        answer = guess.connack()
        guess.close()
        assert answer.reason_code == mqtt5.ConnAckReasonCode.BAD_USER_NAME_OR_PASSWORD
        assert answer.reason_str == "bad credentials"
    token = device.token()
    assert device.api("PATCH", json={"status": "disabled"}).status_code == 200
    refused = Raw5(stack, device.id, token)
    answer = refused.connack()
    refused.close()
    assert answer.reason_code == mqtt5.ConnAckReasonCode.NOT_AUTHORIZED
    assert answer.reason_str == "device_disabled"
    assert device.api("PATCH", json={"status": "active"}).status_code == 200
    client = Raw5(stack, device.id, device.token())
    try:
        client.connack()
        suback = client.subscribe(1, mqtt5.TopicFilter("elsewhere/#", max_qos=qos(1)))
        assert suback.reason_codes == [_R.NOT_AUTHORIZED]
        assert suback.reason_str == "filter not in the device's subscribe ACL"
    finally:
        client.close()


def test_a_session_lives_for_its_expiry_interval_and_a_disconnect_may_end_it(stack: Stack) -> None:
    """Section 3.1.2.11.2: present again within the interval, gone after it; the
    DISCONNECT's own interval replaces the CONNECT's (0 ends it at once)."""
    device = stack.device(stack.fleet())

    def connect(**fields: Any) -> tuple[Raw5, bool]:
        client = Raw5(stack, device.id, device.token(), **fields)
        return client, client.connack().session_present

    first, present = connect(session_expiry_interval=1)
    assert not present
    first.subscribe(1, mqtt5.TopicFilter(f"devices/{device.id}/#", max_qos=qos(1)))
    ended = time.monotonic()
    first.send(mqtt5.DisconnectPacket())
    first.close()
    again, present = connect(clean_start=False, session_expiry_interval=1)
    assert present  # within its second
    again.send(mqtt5.DisconnectPacket())
    ended = time.monotonic()
    again.close()
    _past(ended + 1.5)
    later, present = connect(clean_start=False, session_expiry_interval=60)
    assert not present  # expired
    later.send(mqtt5.DisconnectPacket(session_expiry_interval=0))
    later.close()
    last, present = connect(clean_start=False)
    last.close()
    assert not present  # the DISCONNECT ended it


def test_a_will_waits_for_its_delay_and_a_reconnect_cancels_it(stack: Stack) -> None:
    """Section 3.1.3.2.2: the will goes after its delay (a marker sent after the
    connection's end overtakes it); a new connection to the session within the delay
    means no will; a new session (Clean Start) ends the old one, will and all."""
    fleet, device, watcher = _pair(stack)
    watch = Raw5(stack, watcher.id, watcher.token())
    watch.connack()
    watch.subscribe(1, mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=qos(1)))
    will = mqtt5.Will(_up(fleet, device), payload=b"gone", qos=qos(1), will_delay_interval=2)
    try:
        leaving = Raw5(stack, device.id, device.token(), will=will, session_expiry_interval=60)
        leaving.connack()
        leaving.close()  # no DISCONNECT: the will is due
        _publish(watch, 2, _up(fleet, watcher), b"marker", 1)
        got = [watch.expect(mqtt5.PublishPacket) for _ in range(2)]
        assert [p.payload for p in got] == [b"marker", b"gone"]
        watch.send(mqtt5.PubAckPacket(got[1].packet_id))
        delayed = mqtt5.Will(
            _up(fleet, device), payload=b"late", qos=qos(1), will_delay_interval=60
        )
        leaving = Raw5(stack, device.id, device.token(), will=delayed, session_expiry_interval=60)
        leaving.connack()
        leaving.close()
        back = Raw5(stack, device.id, device.token(), clean_start=False, session_expiry_interval=60)
        assert back.connack().session_present  # the will is off
        back.close()  # its own CONNECT had no will
        fresh = Raw5(stack, device.id, device.token(), will=delayed, session_expiry_interval=60)
        fresh.connack()
        fresh.close()
        new = Raw5(stack, device.id, device.token())  # Clean Start: the old session ends
        new.connack()
        assert watch.expect(mqtt5.PublishPacket).payload == b"late"
        new.send(mqtt5.DisconnectPacket())
        new.close()
    finally:
        watch.close()


def test_the_server_keep_alive_replaces_none_or_a_longer_one(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    for asked, told in ((0, 1200), (3600, 1200), (60, None)):
        client = Raw5(stack, device.id, device.token(), keep_alive=asked)
        assert client.connack().server_keep_alive == told
        client.close()


def test_an_unacknowledged_message_is_resent_when_a_5_0_session_resumes(stack: Stack) -> None:
    """The 3.1.1 guarantee (README, faults 7 and 13) holds for 5.0 sessions: a QoS 1
    message without its PUBACK goes again, DUP=1, with its properties."""
    fleet, device, sender = _pair(stack)
    client = Raw5(stack, device.id, device.token(), session_expiry_interval=60)
    pub = Raw5(stack, sender.id, sender.token())
    try:
        client.connack()
        pub.connack()
        client.subscribe(1, mqtt5.TopicFilter(f"fleets/{fleet}/up/+", max_qos=qos(1)))
        _publish(pub, 2, _up(fleet, sender), b"once", 1, user_properties=[("k", "v")])
        first = client.expect(mqtt5.PublishPacket)
        assert (first.payload, first.duplicate) == (b"once", False)
        client.close()  # no PUBACK
        client = Raw5(
            stack, device.id, device.token(), clean_start=False, session_expiry_interval=60
        )
        assert client.connack().session_present
        again = client.expect(mqtt5.PublishPacket)
        assert (again.payload, again.duplicate, again.packet_id) == (b"once", True, first.packet_id)
        assert again.user_properties == [("k", "v")]
        client.send(mqtt5.PubAckPacket(again.packet_id))
    finally:
        client.close()
        pub.close()
