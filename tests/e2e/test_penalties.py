"""What an attacker who knows a device id, or shares its address, can do to it through
the penalties: slow down their own guesses, never keep the device offline. A real
`credbroker up`; the attacker speaks MQTT with mosquitto_pub and HTTP with httpx."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from device_sdk import DeviceClient, assertion_form, generate_key
from tests.stack import Device, Stack, mosquitto_pub, start_stack, wait_for

BAD_CREDENTIALS, TRY_LATER = 4, 3  # CONNACK codes; mosquitto_pub exits with them


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # A stack of each test's own: penalties are state, and every client here is 127.0.0.1.
    started = start_stack(tmp_path, CREDBROKER_LEEWAY="1")
    yield started
    started.stop()


def _guess(stack: Stack, client_id: str) -> int:
    return mosquitto_pub(stack, client_id, "guess-" + uuid.uuid4().hex, "x").returncode


def _publish(stack: Stack, device: Device) -> int:
    return mosquitto_pub(stack, device.id, device.token(), f"devices/{device.id}/t").returncode


def test_guesses_at_a_device_id_are_told_to_try_later_and_its_token_still_works(
    stack: Stack,
) -> None:
    device = stack.device(stack.fleet())
    codes = [_guess(stack, device.id) for _ in range(12)]
    first = codes.index(TRY_LATER)  # a few free failures, then the penalty's answer
    assert 0 < first <= 6 and set(codes[:first]) == {BAD_CREDENTIALS}
    assert set(codes[first:]) == {TRY_LATER}  # never "bad credentials" under a penalty
    # A correctly signed live token gets through the penalty that someone else earned.
    assert _publish(stack, device) == 0
    metrics = stack.http.get(stack.base + "/metrics").text
    assert 'credbroker_mqtt_connects_total{reason="malformed",result="throttled"}' in metrics


def test_a_flood_from_one_address_does_not_lock_out_the_devices_behind_it(stack: Stack) -> None:
    codes = [_guess(stack, f"nobody-{n}") for n in range(30)]  # 30 ids: the address's tally
    assert codes[-1] == TRY_LATER
    honest = stack.device(stack.fleet())
    assert _publish(stack, honest) == 0


def test_an_sdk_device_under_attack_keeps_refreshing_and_reconnecting(
    stack: Stack, tmp_path: Path
) -> None:
    """Before: six guesses at its id made the broker answer 4, the SDK renewed once,
    was refused again and stopped for good."""
    device = stack.device(stack.fleet(ttl=3))
    states: list[str] = []
    client = DeviceClient(
        api_url=stack.base,
        device_id=device.id,
        private_key=device.key,
        mqtt_host="127.0.0.1",
        mqtt_port=stack.mqtt_port,
        on_state=lambda state, details: states.append(state),
    )
    client.connect()
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            _guess(stack, device.id)

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        # Each refresh reconnects with a fresh token, into the penalty the attack keeps up.
        wait_for(lambda: states.count("refreshed") >= 2, timeout=30, what="two refreshes")
        wait_for(lambda: states[-1] == "connected", timeout=10, what="the reconnect")
        assert not client.stopped and "stopped" not in states and "revoked" not in states
    finally:
        stop.set()
        attacker.join(30)
        client.close()


def _hook_logins(stack: Stack, device: Device, token: str) -> dict[str, bool]:
    """One CONNECT of the device through each broker's hook, as each broker sends it."""
    me, http, admin = device.id, stack.http, stack.admin

    def post(path: str, **kw: object) -> object:
        return http.post(f"{stack.base}/v1/hooks/{path}", headers=admin, **kw)  # type: ignore[arg-type]

    rabbit = post("rabbitmq/user", data={"username": me, "password": token, "client_id": me})
    emqx = post("emqx/authn", json={"clientid": me, "username": me, "password": token})
    go = post("mosquitto-go-auth/user", json={"username": me, "password": token, "clientid": me})
    verne = post(
        "vernemq/auth_on_register",
        json={"client_id": me, "username": me, "password": token, "peer_addr": "10.1.2.3"},
    )
    return {
        "rabbitmq": rabbit.text == "allow",  # type: ignore[attr-defined]
        "emqx": emqx.json()["result"] == "allow",  # type: ignore[attr-defined]
        "mosquitto-go-auth": go.status_code == 200,  # type: ignore[attr-defined]
        "vernemq": verne.json() == {"result": "ok"},  # type: ignore[attr-defined]
    }


def test_bad_logins_through_a_hook_broker_lock_out_no_honest_device(stack: Stack) -> None:
    """Before: the hooks' penalty key was the broker's own address, so two bad logins a
    second from one attacker denied nearly every honest login for two minutes."""
    fleet = stack.fleet()
    victim, others = stack.device(fleet), [stack.device(fleet) for _ in range(3)]
    for n in range(40):  # guesses from "the broker", at the victim and at random ids
        target = victim if n % 2 else stack.device(fleet)
        assert _hook_logins(stack, target, "guess-" + uuid.uuid4().hex) == dict.fromkeys(
            ("rabbitmq", "emqx", "mosquitto-go-auth", "vernemq"), False
        )
    for device in [victim, *others]:
        token = device.token()
        assert all(_hook_logins(stack, device, token).values()), device.id


def test_junk_assertions_naming_a_device_do_not_lock_it_out_of_its_tokens(stack: Stack) -> None:
    device = stack.device(stack.fleet())
    endpoint = stack.base + "/oauth2/token"
    answers = []
    for _ in range(14):  # no key needed: any key, the victim's id as iss
        junk = assertion_form(generate_key(), device_id=device.id, audience=endpoint)
        answers.append(stack.http.post(endpoint, data=junk))
    assert answers[0].status_code == 401
    throttled = answers[-1]
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert throttled.json()["error"] == "invalid_client"  # an RFC 6749 error value
    token = device.token()  # a verified assertion gets through
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == device.id
