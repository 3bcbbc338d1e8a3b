"""The SDK's rules for refusals, lost connections and token failures, without I/O."""

from __future__ import annotations

import pytest

from device_sdk import Backoff, ConnectError, DeviceRevoked, Policy, TokenError
from device_sdk._policy import Step, connack_code, reason_name


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    highest = Backoff(base=0.5, cap=4.0, rng=lambda: 0.999999)
    ceilings = [highest.next() for _ in range(6)]
    assert ceilings == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0], rel=1e-5)
    lowest = Backoff(rng=lambda: 0.0)
    assert [lowest.next() for _ in range(3)] == [0.0, 0.0, 0.0]
    highest.reset()
    assert highest.next() == pytest.approx(0.5, rel=1e-5)


def test_refresh_point_is_jittered_around_eighty_percent() -> None:
    points = [Policy().refresh_in(100) for _ in range(500)]
    assert all(70 <= p <= 90 for p in points)
    assert max(points) - min(points) > 10  # spread, not one instant for the fleet


def test_server_unavailable_keeps_the_token_and_backs_off() -> None:
    policy = Policy(backoff=Backoff(rng=lambda: 1.0))
    steps = [policy.refused(3) for _ in range(3)]
    assert [s.action for s in steps] == ["retry"] * 3
    assert [s.delay for s in steps] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("code", [4, 5])
def test_bad_credentials_renew_once_then_stop(code: int) -> None:
    policy = Policy()
    assert policy.refused(code).action == "renew"
    final = policy.refused(code)
    assert final.action == "stop"
    assert isinstance(final.error, ConnectError) and final.error.return_code == code
    # A success in between earns another renewal (the next expiry is a new story).
    policy.connected()
    assert policy.refused(code).action == "renew"


def test_other_refusals_stop_at_once() -> None:
    step = Policy().refused(2)
    assert step.action == "stop" and "identifier rejected" in str(step.error)


def test_lost_connection_renews_only_an_expired_token() -> None:
    policy = Policy()
    assert policy.lost(token_expired=False).action == "retry"
    assert policy.lost(token_expired=True).action == "renew"


def test_retry_after_is_a_floor_with_jitter_on_top() -> None:
    policy = Policy(backoff=Backoff(rng=lambda: 1.0))
    step = policy.token_failed(TokenError("slow down", status=429, retry_after=7))
    assert step.action == "renew" and step.delay == 7.5


def test_unreachable_token_endpoint_backs_off_but_a_refusal_stops() -> None:
    policy = Policy()
    assert policy.token_failed(TokenError("down", status=None)).action == "renew"
    assert policy.token_failed(TokenError("oops", status=503)).action == "renew"
    assert policy.token_failed(DeviceRevoked("revoked", status=401)).action == "stop"
    assert policy.token_failed(TokenError("bad request", status=400)).action == "stop"


def test_paho_reason_names_map_back_to_mqtt311_codes() -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    names = ["Success", "Server unavailable", "Bad user name or password", "Not authorized"]
    assert [connack_code(ReasonCode(PacketTypes.CONNACK, n)) for n in names] == [0, 3, 4, 5]
    assert connack_code(ReasonCode(PacketTypes.CONNACK, "Unspecified error")) == -1


@pytest.mark.parametrize(("five", "three"), [(0x86, 4), (0x87, 5)])
def test_5_0_connack_refusals_are_read_as_their_3_1_1_codes(five: int, three: int) -> None:
    policy = Policy()
    assert policy.refused(five).action == "renew"
    final = policy.refused(five)
    assert final.action == "stop"
    assert isinstance(final.error, ConnectError) and final.error.return_code == five
    assert f"{five:#04x}" in str(final.error)


@pytest.mark.parametrize("code", [0x88, 0x9F])
def test_5_0_server_unavailable_and_rate_exceeded_back_off(code: int) -> None:
    policy = Policy(backoff=Backoff(rng=lambda: 1.0))
    steps = [policy.refused(code) for _ in range(3)]
    assert [(s.action, s.delay) for s in steps] == [("retry", 0.5), ("retry", 1.0), ("retry", 2.0)]


def test_a_bad_authentication_method_stops_at_once() -> None:
    step = Policy().refused(0x8C)
    assert step.action == "stop" and "bad authentication method" in str(step.error)


def test_a_cut_at_expiry_renews_at_once_but_not_authorized_renews_only_once() -> None:
    """0xA0 and 0x87 mean different things: a token to renew, a device maybe revoked."""
    policy = Policy()
    assert [policy.cut(0xA0, token_expired=True) for _ in range(2)] == [Step("renew")] * 2
    assert policy.cut(0x87, token_expired=False) == Step("renew")
    refused = policy.cut(0x87, token_expired=False)
    assert refused.action == "stop" and isinstance(refused.error, ConnectError)
    assert refused.error.return_code == 0x87


def test_a_take_over_retries_after_a_pause_and_an_administrative_end_renews() -> None:
    """0x8E does not stop: whoever holds a copy of the token must not keep the device
    offline for good; the pause keeps two clients with one id from trading the session
    many times a second."""
    policy = Policy(backoff=Backoff(rng=lambda: 1.0))
    assert policy.cut(0x8E, token_expired=False) == Step("retry", 10.5)
    assert policy.cut(0x98, token_expired=False) == Step("renew", 1.0)
    assert policy.cut(0x8B, token_expired=True) == Step("renew", 2.0)  # as a lost connection
    assert policy.cut(0x8B, token_expired=False) == Step("retry", 4.0)


def test_reason_names_cover_both_protocols() -> None:
    assert reason_name(5) == "not authorized"
    assert reason_name(0x87) == "not authorized"
    assert reason_name(0xA0) == "maximum connect time"
    assert reason_name(None) == "connection lost"
    assert reason_name(0x95) == "reason 0x95"
