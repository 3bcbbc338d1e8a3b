"""Broker hooks, as each broker calls them: request and answer formats from the brokers'
documentation (RabbitMQ's from field notes of a live 3.10 node; the live test is in
tests/e2e)."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest

from device_sdk import generate_key, password_with_proof
from tests.support import Api, Device

NOT_ALLOWED = {"result": {"error": "not_allowed"}}


@pytest.fixture
def device(api: Api, fleet: str) -> Device:
    return api.device(fleet)


def _token(device: Device) -> str:
    return str(device.tokens()["access_token"])


def _rabbit(api: Api, path: str, **form: str) -> str:
    response = api.client.post(f"/v1/hooks/rabbitmq/{path}", data=form, headers=api.admin)
    assert response.status_code == 200, response.text
    return response.text


def _json(api: Api, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = api.client.post(f"/v1/hooks/{path}", json=body, headers=api.admin)
    assert response.status_code == status, response.text
    return response.json()


def test_hooks_are_never_anonymous(api: Api, device: Device) -> None:
    form = {"username": device.id, "password": _token(device), "client_id": device.id}
    assert api.client.post("/v1/hooks/rabbitmq/user", data=form).status_code == 401
    reader = api.client.post(
        "/v1/admin-keys", headers=api.admin, json={"name": "ro", "scopes": ["devices:read"]}
    ).json()["key"]
    no_scope = {"Authorization": f"Bearer {reader}"}
    assert (
        api.client.post("/v1/hooks/rabbitmq/user", data=form, headers=no_scope).status_code == 403
    )
    # RabbitMQ can only send credentials in the URL: HTTP Basic with the key as password.
    basic = base64.b64encode(f"hook:{api.admin_key}".encode()).decode()
    answer = api.client.post(
        "/v1/hooks/rabbitmq/user", data=form, headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.text == "allow"


def test_rabbitmq_connect_publish_and_subscribe(api: Api, device: Device) -> None:
    me = device.id
    assert _rabbit(api, "user", username=me, password=_token(device), vhost="/", client_id=me) == (
        "allow"
    )
    assert _rabbit(api, "user", username=me, password="garbage", client_id=me) == "deny"
    assert _rabbit(api, "user", username=me, password=_token(device), client_id="other") == "deny"
    assert _rabbit(api, "vhost", username=me, vhost="/", ip="127.0.0.1", client_id=me) == "allow"

    def resource(kind: str, name: str, permission: str) -> str:
        return _rabbit(
            api, "resource", username=me, vhost="/", resource=kind, name=name,
            permission=permission, tags="", client_id=me,
        )  # fmt: skip

    assert resource("exchange", "amq.topic", "write") == "allow"
    assert resource("queue", f"mqtt-subscription-{me}qos1", "configure") == "allow"
    assert resource("queue", "mqtt-subscription-someone-elseqos1", "read") == "deny"
    assert resource("exchange", "amq.fanout", "write") == "deny"

    def topic(permission: str, routing_key: str) -> str:
        return _rabbit(
            api, "topic", username=me, vhost="/", resource="topic", name="amq.topic",
            permission=permission, tags="", routing_key=routing_key,
            **{"variable_map.client_id": me, "variable_map.username": me},
        )  # fmt: skip

    assert topic("write", f"devices.{me}.temp") == "allow"
    assert topic("write", "devices.someone-else.temp") == "deny"
    assert topic("write", f"devices.{me}.*") == "deny"  # a publish has no wildcards
    assert topic("read", f"devices.{me}.cmd.#") == "allow"
    assert topic("read", "devices.*.cmd.#") == "deny"  # `+` arrives as `*`


def test_revocation_clears_the_cached_grants(api: Api, device: Device) -> None:
    me, token = device.id, _token(device)
    assert _rabbit(api, "user", username=me, password=token, client_id=me) == "allow"
    api.client.post(f"/v1/devices/{me}:revoke", headers=api.admin)
    assert _rabbit(api, "vhost", username=me, vhost="/", client_id=me) == "deny"
    write = {"permission": "write", "routing_key": f"devices.{me}.t"}
    assert _rabbit(api, "topic", username=me, **write, **{"variable_map.client_id": me}) == "deny"
    assert _rabbit(api, "user", username=me, password=token, client_id=me) == "deny"


def test_emqx_authentication_carries_expiry_and_acl(api: Api, device: Device) -> None:
    me = device.id
    body = {"clientid": me, "username": me, "password": _token(device)}
    answer = _json(api, "emqx/authn", body)
    assert answer["result"] == "allow" and answer["is_superuser"] is False
    assert answer["expire_at"] > api.clock()
    assert {"permission": "allow", "action": "publish", "topic": f"devices/{me}/#"} in answer["acl"]
    assert answer["acl"][-1] == {"permission": "deny", "action": "all", "topic": "#"}
    assert _json(api, "emqx/authn", body | {"password": "nope"}) == {"result": "deny"}

    def authz(action: str, topic: str) -> str:
        check = {"clientid": me, "username": me, "topic": topic, "action": action}
        return str(_json(api, "emqx/authz", check)["result"])

    assert authz("publish", f"devices/{me}/temp") == "allow"
    assert authz("publish", "devices/other/temp") == "deny"
    assert authz("subscribe", f"devices/{me}/cmd/+") == "allow"
    assert authz("subscribe", "$SYS/#") == "deny"


def test_mosquitto_go_auth_user_superuser_and_acl(api: Api, device: Device) -> None:
    me = device.id
    user = {"username": me, "password": _token(device), "clientid": me}
    assert _json(api, "mosquitto-go-auth/user", user)["ok"] is True
    assert _json(api, "mosquitto-go-auth/user", user | {"password": "x"}, 403)["ok"] is False
    assert _json(api, "mosquitto-go-auth/superuser", {"username": me}, 403)["ok"] is False

    def acl(topic: str, acc: int, status: int) -> None:
        check = {"username": me, "clientid": me, "topic": topic, "acc": acc}
        _json(api, "mosquitto-go-auth/acl", check, status)

    acl(f"devices/{me}/temp", 2, 200)  # write
    acl("devices/other/temp", 2, 403)
    acl(f"devices/{me}/cmd/#", 4, 200)  # subscribe
    acl("devices/#", 4, 403)
    acl(f"devices/{me}/cmd/reboot", 1, 200)  # read: a delivery to this client
    acl(f"devices/{me}/temp", 3, 403)  # read and write: it may not read its telemetry


def test_vernemq_register_publish_and_per_topic_subscribe(api: Api, device: Device) -> None:
    me = device.id
    register = {
        "peer_addr": "127.0.0.1", "peer_port": 50000, "username": me,
        "password": _token(device), "mountpoint": "", "client_id": me, "clean_session": False,
    }  # fmt: skip
    assert _json(api, "vernemq/auth_on_register", register) == {"result": "ok"}
    refused = _json(api, "vernemq/auth_on_register", register | {"password": "x"})
    assert refused == {"result": {"error": "not_allowed"}}
    publish = {"username": me, "client_id": me, "mountpoint": "", "qos": 1, "payload": "aGk="}
    own, foreign = publish | {"topic": f"devices/{me}/t"}, publish | {"topic": "devices/x/t"}
    assert _json(api, "vernemq/auth_on_publish", own) == {"result": "ok"}
    assert _json(api, "vernemq/auth_on_publish", foreign) == {"result": {"error": "not_allowed"}}
    subscribe = {
        "username": me, "client_id": me, "mountpoint": "",
        "topics": [{"topic": f"devices/{me}/cmd/#", "qos": 1}, {"topic": "#", "qos": 1}],
    }  # fmt: skip
    assert _json(api, "vernemq/auth_on_subscribe", subscribe) == {
        "result": "ok",
        "topics": [{"topic": f"devices/{me}/cmd/#", "qos": 1}, {"topic": "#", "qos": 128}],
    }


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


def test_emqx_expire_at_is_the_sessions_end_in_seconds(api: Api, device: Device) -> None:
    """EMQX 5.8+ reads `expire_at` as Unix seconds and disconnects the client then
    (5.0 clients with DISCONNECT 0x87): the token's exp plus the leeway, where the
    embedded broker cuts the session too."""
    me, token = device.id, _token(device)
    answer = _json(api, "emqx/authn", {"clientid": me, "username": me, "password": token})
    assert answer["expire_at"] == _exp(token) + api.settings.leeway


def _register5(device: Device, **changes: Any) -> dict[str, Any]:
    """An `auth_on_register_m5` body as VerneMQ sends it (vmq-docs, webhookplugins.md)."""
    body = {
        "peer_addr": "127.0.0.1", "peer_port": 50000, "mountpoint": "", "client_id": device.id,
        "username": device.id, "password": _token(device), "clean_start": True,
        "properties": {"p_session_expiry_interval": 60},
    }  # fmt: skip
    return body | changes


def test_vernemq_m5_register_ends_the_session_at_the_tokens_end(api: Api, device: Device) -> None:
    body = _register5(device)
    answer = _json(api, "vernemq/auth_on_register_m5", body)
    lifetime = _exp(body["password"]) + api.settings.leeway - int(api.clock())
    assert answer == {"result": "ok", "modifiers": {"max_connection_lifetime": lifetime}}
    # No cache-control: VerneMQ would cache the lifetime with the answer (vmq-docs).
    raw = api.client.post("/v1/hooks/vernemq/auth_on_register_m5", json=body, headers=api.admin)
    assert "cache-control" not in raw.headers
    api.clock.advance(lifetime - 0.5)  # the same login later: only what is left of it
    again = _json(api, "vernemq/auth_on_register_m5", body)
    assert again["modifiers"] == {"max_connection_lifetime": 1}


def test_vernemq_m5_refusals_carry_the_reason_name(api: Api, device: Device) -> None:
    """VerneMQ's name of the refusal's MQTT 5.0 reason code (it logs it; its webhooks
    send CONNACK 0x86 whatever the name), from the same decision as 3.1.1's."""
    for hook in ("auth_on_register_m5", "auth_on_publish_m5", "auth_on_subscribe_m5"):
        assert api.client.post(f"/v1/hooks/vernemq/{hook}", json={}).status_code == 401
    bad = _json(api, "vernemq/auth_on_register_m5", _register5(device, password="x"))
    assert bad == {"result": {"error": "bad_username_or_password"}}
    anonymous = _register5(device, username=None, password=None)
    assert _json(api, "vernemq/auth_on_register_m5", anonymous) == bad
    body = _register5(device)
    api.client.post(f"/v1/devices/{device.id}:revoke", headers=api.admin)
    revoked = _json(api, "vernemq/auth_on_register_m5", body)
    assert revoked == {"result": {"error": "not_authorized"}}
    assert _json(api, "vernemq/auth_on_register", body) == {"result": {"error": "not_allowed"}}


def test_vernemq_m5_publish_and_per_filter_subscribe(api: Api, device: Device) -> None:
    me = device.id
    assert _json(api, "vernemq/auth_on_register_m5", _register5(device))["result"] == "ok"
    publish = {
        "username": me, "client_id": me, "mountpoint": "", "qos": 1, "payload": "aGk=",
        "retain": False, "properties": {},
    }  # fmt: skip
    own, foreign = publish | {"topic": f"devices/{me}/t"}, publish | {"topic": "devices/x/t"}
    assert _json(api, "vernemq/auth_on_publish_m5", own) == {"result": "ok"}
    assert _json(api, "vernemq/auth_on_publish_m5", foreign) == NOT_ALLOWED
    mine = {
        "topic": f"devices/{me}/cmd/#", "qos": 1, "no_local": True, "rap": False,
        "retain_handling": "dont_send",
    }  # fmt: skip
    subscribe = {
        "username": me, "client_id": me, "mountpoint": "", "properties": {},
        "topics": [mine, {"topic": "#", "qos": 2, "no_local": False, "rap": False,
                          "retain_handling": "send_retain"}],
    }  # fmt: skip
    granted = subscribe | {"topics": [mine]}
    assert _json(api, "vernemq/auth_on_subscribe_m5", granted) == {"result": "ok"}
    # The granted filter keeps its QoS and options; the refused one gets 0x87 (135).
    assert _json(api, "vernemq/auth_on_subscribe_m5", subscribe) == {
        "result": "ok",
        "modifiers": {"topics": [mine, {"topic": "#", "qos": 135}]},
    }
    api.client.post(f"/v1/devices/{me}:revoke", headers=api.admin)
    assert _json(api, "vernemq/auth_on_publish_m5", own) == NOT_ALLOWED
    after = _json(api, "vernemq/auth_on_subscribe_m5", subscribe)["modifiers"]["topics"]
    assert after == [{"topic": mine["topic"], "qos": 135}, {"topic": "#", "qos": 135}]


def test_hooks_answer_bad_requests_with_4xx(api: Api) -> None:
    assert api.client.post("/v1/hooks/emqx/authn", json={}, headers=api.admin).status_code == 422
    wrong_type = api.client.post(
        "/v1/hooks/rabbitmq/user", json={"username": "x"}, headers=api.admin
    )
    assert wrong_type.status_code == 415
    unknown = {"clientid": "nobody", "username": "nobody", "topic": "a", "action": "publish"}
    assert _json(api, "emqx/authz", unknown) == {"result": "deny"}


def test_a_hook_key_from_the_environment_may_call_hooks_and_nothing_else(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import secrets

    from tests.support import make_api

    hook_key = "hook_" + secrets.token_hex(24)
    api = make_api(tmp_path, hook_key=hook_key)
    device = api.device(api.fleet()["name"])
    headers = {"Authorization": f"Bearer {hook_key}"}
    form = {"username": device.id, "password": _token(device), "client_id": device.id}
    assert api.client.post("/v1/hooks/rabbitmq/user", data=form, headers=headers).text == "allow"
    assert api.client.get("/v1/devices", headers=headers).status_code == 403


def test_a_cached_login_still_binds_the_username(api: Api, device: Device) -> None:
    """Before: after one good login, the same client id and token with any username,
    even an empty one, was allowed by every hook."""
    me, token = device.id, _token(device)
    assert _rabbit(api, "user", username=me, password=token, client_id=me) == "allow"
    emqx_login = {"clientid": me, "username": me, "password": token}
    assert _json(api, "emqx/authn", emqx_login)["result"] == "allow"
    for username in ("someone-else", "x"):
        assert _rabbit(api, "user", username=username, password=token, client_id=me) == "deny"
    for username in ("", "someone-else"):
        emqx = {"clientid": me, "username": username, "password": token}
        assert _json(api, "emqx/authn", emqx) == {"result": "deny"}
        go = {"username": username, "password": token, "clientid": me}
        assert _json(api, "mosquitto-go-auth/user", go, 403)["ok"] is False
        verne = {"client_id": me, "username": username, "password": token}
        assert _json(api, "vernemq/auth_on_register", verne) == {"result": {"error": "not_allowed"}}


@pytest.mark.parametrize(
    "bad", ["devices/{me}/cmd/#/x", "devices/{me}/cmd/a+", "devices/{me}/cmd/\x00", ""]
)
def test_hooks_refuse_invalid_subscribe_filters(api: Api, device: Device, bad: str) -> None:
    """MQTT 3.1.1 section 4.7.1, as the embedded broker refuses them."""
    me = device.id
    topic = bad.format(me=me)
    assert (
        _json(api, "emqx/authn", {"clientid": me, "username": me, "password": _token(device)})[
            "result"
        ]
        == "allow"
    )
    authz = {"clientid": me, "username": me, "topic": topic, "action": "subscribe"}
    assert _json(api, "emqx/authz", authz) == {"result": "deny"}
    _json(
        api,
        "mosquitto-go-auth/acl",
        {"username": me, "clientid": me, "topic": topic, "acc": 4},
        403,
    )
    subscribe = {"username": me, "client_id": me, "topics": [{"topic": topic, "qos": 1}]}
    assert _json(api, "vernemq/auth_on_subscribe", subscribe)["topics"] == [
        {"topic": topic, "qos": 128}
    ]
    if topic:  # an empty form field is a missing one to RabbitMQ's hook: 422
        rabbit = {
            "username": me, "permission": "read", "routing_key": topic.replace("/", "."),
            "variable_map.client_id": me,
        }  # fmt: skip
        assert _rabbit(api, "topic", **rabbit) == "deny"


def test_hooks_want_a_proof_of_possession_where_the_fleet_does(api: Api) -> None:
    """README, Proof of possession on MQTT: the hooks decide as the brokers do, and a
    proof is good for one CONNECT even where logins are cached."""
    device = api.device(str(api.fleet(proof_of_possession=True)["name"]))
    me, token = device.id, _token(device)
    emqx = {"clientid": me, "username": me, "password": token}
    assert _json(api, "emqx/authn", emqx) == {"result": "deny"}
    user = {"username": me, "password": token, "clientid": me}
    assert _json(api, "mosquitto-go-auth/user", user, 403)["ok"] is False
    proven = password_with_proof(device.key, token, now=api.clock())
    assert _json(api, "emqx/authn", emqx | {"password": proven})["result"] == "allow"
    assert _json(api, "emqx/authn", emqx | {"password": proven}) == {"result": "deny"}
    again = password_with_proof(device.key, token, now=api.clock())
    assert _json(api, "mosquitto-go-auth/user", user | {"password": again})["ok"] is True
    stolen = password_with_proof(generate_key(), token, now=api.clock())
    assert _json(api, "mosquitto-go-auth/user", user | {"password": stolen}, 403)["ok"] is False


def test_hooks_refuse_passwordless_logins_where_certificates_log_in(api: Api) -> None:
    """README, Certificate login on MQTTS: a broker behind the hooks sends no verified
    certificate, so a fleet's `certificate_login` opens no passwordless login there."""
    device = api.device(str(api.fleet(certificate_login=True)["name"]))
    me = device.id
    assert _json(api, "emqx/authn", {"clientid": me, "username": me}) == {"result": "deny"}
    user = {"username": me, "password": "", "clientid": me}
    assert _json(api, "mosquitto-go-auth/user", user, 403)["ok"] is False
    assert _rabbit(api, "user", username=me, password="") == "deny"
