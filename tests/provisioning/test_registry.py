"""Fleets, devices, credential keys, batch creation, paging, admin keys, bad input."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from credbroker import jwk
from device_sdk import generate_key, public_pem
from tests.support import Api


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["detail"]
    return dict(body)


def test_fleet_create_read_update(api: Api) -> None:
    created = api.fleet("plant-7", token_ttl=600)
    assert created["token_ttl"] == 600 and created["allow_client_secret"] is False
    read = api.client.get("/v1/fleets/plant-7", headers=api.admin).json()
    assert read == created
    patched = api.client.patch(
        "/v1/fleets/plant-7", json={"token_ttl": 300}, headers=api.admin
    ).json()
    assert patched["token_ttl"] == 300 and patched["acl"] == created["acl"]
    _problem(api.client.post("/v1/fleets", json={"name": "plant-7"}, headers=api.admin), 409)
    _problem(api.client.get("/v1/fleets/nope", headers=api.admin), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad/name"},
        {"name": "f", "acl": {"publish": ["a/#/b"]}},
        {"name": "f", "acl": {"publish": ["a/b+"]}},
        {"name": "f", "acl": {"subscribe": ["devices/{devce_id}"]}},
        {"name": "f", "token_ttl": 86401},
        {"name": "f", "token_ttl": 0},
        {"name": "f", "unknown": 1},
    ],
)
def test_fleet_bad_input_is_refused(api: Api, body: dict) -> None:
    _problem(api.client.post("/v1/fleets", json=body, headers=api.admin), 422)


def test_device_with_p256_jwk(api: Api, fleet: str) -> None:
    key = generate_key("es256")
    as_jwk = jwk.to_jwk(key.public_key())
    response = api.client.post(
        "/v1/devices",
        headers=api.admin,
        json={"device_id": "jwk-1", "fleet": fleet, "public_key": as_jwk},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["credential_keys"][0]["alg"] == "ES256"
    assert body["credential_keys"][0]["kid"] == jwk.thumbprint(as_jwk)
    assert body["status"] == "active" and body["fleet"] == fleet


def test_device_without_key_gets_a_single_use_enrollment_token(api: Api, fleet: str) -> None:
    created = api.client.post(
        "/v1/devices", json={"device_id": "claim-1", "fleet": fleet}, headers=api.admin
    ).json()
    token = created["enrollment_token"]
    assert token and created["client_secret"] is None
    key = generate_key()
    enrolled = api.client.post(
        "/v1/enroll", json={"enrollment_token": token, "public_key": public_pem(key)}
    )
    assert enrolled.status_code == 201, enrolled.text
    again = api.client.post(
        "/v1/enroll", json={"enrollment_token": token, "public_key": public_pem(generate_key())}
    )
    assert _problem(again, 400)["error"] == "invalid_enrollment_token"
    from tests.support import Device

    device = Device(api, "claim-1", key)
    assert api.token(device.grant_form()).status_code == 200


def test_enrollment_token_expires(api: Api, fleet: str) -> None:
    token = api.client.post("/v1/devices", json={"fleet": fleet}, headers=api.admin).json()[
        "enrollment_token"
    ]
    api.clock.advance(8 * 86400)
    late = api.client.post(
        "/v1/enroll", json={"enrollment_token": token, "public_key": public_pem(generate_key())}
    )
    _problem(late, 400)


def test_generated_device_id_follows_the_contract(api: Api, fleet: str) -> None:
    body = api.client.post("/v1/devices", json={"fleet": fleet}, headers=api.admin).json()
    from credbroker.claims import is_device_id

    assert is_device_id(body["device_id"])


def _short_rsa_pem() -> str:
    """RSA keys are accepted from 2048 bits (RS256); a 1024-bit one is not."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _private_pem() -> str:
    return (
        generate_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _p384_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    "public_key",
    [
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
        "hello",
        {"kty": "OKP", "crv": "Ed25519"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        },
    ],
)
def test_bad_public_keys_are_refused(api: Api, fleet: str, public_key) -> None:
    response = api.client.post(
        "/v1/devices", headers=api.admin, json={"fleet": fleet, "public_key": public_key}
    )
    assert _problem(response, 400)["error"] == "invalid_key"
    listed = api.client.get(f"/v1/devices?fleet={fleet}", headers=api.admin).json()
    assert listed["items"] == []  # nothing half-written


@pytest.mark.parametrize("make_pem", [_short_rsa_pem, _private_pem, _p384_pem])
def test_wrong_kinds_of_pem_are_refused(api: Api, fleet: str, make_pem) -> None:
    response = api.client.post(
        "/v1/devices", headers=api.admin, json={"fleet": fleet, "public_key": make_pem()}
    )
    _problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"device_id": "has.dot"},
        {"device_id": "has/slash"},
        {"device_id": "has#hash"},
        {"device_id": "has+plus"},
        {"device_id": "x" * 129},
        {"device_id": "-leading"},
        {"metadata": "not an object"},
        {"extra_field": 1},
    ],
)
def test_device_bad_input_is_refused(api: Api, fleet: str, body: dict) -> None:
    response = api.client.post("/v1/devices", json={"fleet": fleet, **body}, headers=api.admin)
    _problem(response, 422)


def test_device_errors(api: Api, fleet: str) -> None:
    api.device(fleet, device_id="dup-1")
    dup = api.client.post(
        "/v1/devices", json={"device_id": "dup-1", "fleet": fleet}, headers=api.admin
    )
    _problem(dup, 409)
    _problem(api.client.post("/v1/devices", json={"fleet": "ghost"}, headers=api.admin), 404)
    big = {"fleet": fleet, "metadata": {"blob": "x" * 5000}}
    _problem(api.client.post("/v1/devices", json=big, headers=api.admin), 400)
    _problem(api.client.get("/v1/devices/ghost", headers=api.admin), 404)
    _problem(api.client.get("/v1/devices/bad.id", headers=api.admin), 404)


def test_request_guards(api: Api, fleet: str) -> None:
    _problem(
        api.client.post(
            "/v1/devices",
            content=b"fleet=x",
            headers={**api.admin, "content-type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
    _problem(
        api.client.post(
            "/v1/devices", content=b"{", headers={**api.admin, "content-type": "application/json"}
        ),
        422,
    )
    huge = json.dumps({"fleet": fleet, "metadata": {"x": "y" * 300_000}}).encode()
    _problem(
        api.client.post(
            "/v1/devices", content=huge, headers={**api.admin, "content-type": "application/json"}
        ),
        413,
    )

    def chunks():
        yield b'{"fleet": "' + b"x" * 200_000
        yield b"x" * 200_000 + b'"}'

    _problem(
        api.client.post(
            "/v1/devices",
            content=chunks(),
            headers={**api.admin, "content-type": "application/json"},
        ),
        413,
    )
    _problem(api.client.get("/v1/nothing-here", headers=api.admin), 404)


def test_admin_authentication_and_scopes(api: Api, fleet: str) -> None:
    _problem(api.client.get("/v1/devices"), 401)
    _problem(api.client.get("/v1/devices", headers={"Authorization": "Bearer wrong"}), 401)
    _problem(api.client.get("/v1/devices", headers={"Authorization": "Basic abc"}), 401)
    reader = api.client.post(
        "/v1/admin-keys", json={"name": "ro", "scopes": ["devices:read"]}, headers=api.admin
    ).json()
    read_only = {"Authorization": f"Bearer {reader['key']}"}
    assert api.client.get("/v1/devices", headers=read_only).status_code == 200
    _problem(api.client.post("/v1/devices", json={"fleet": fleet}, headers=read_only), 403)
    _problem(
        api.client.post("/v1/admin-keys", json={"scopes": ["devices:read"]}, headers=read_only), 403
    )
    _problem(api.client.get("/v1/audit", headers=read_only), 403)


def test_listing_pages_with_a_cursor_and_filters(api: Api, fleet: str) -> None:
    other = api.fleet()["name"]
    ids = sorted(api.device(fleet).id for _ in range(5))
    api.device(other)
    seen, cursor = [], None
    while True:
        url = f"/v1/devices?fleet={fleet}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get(url, headers=api.admin).json()
        seen += [d["device_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    api.client.patch(f"/v1/devices/{ids[0]}", json={"status": "disabled"}, headers=api.admin)
    disabled = api.client.get("/v1/devices?status=disabled", headers=api.admin).json()
    assert [d["device_id"] for d in disabled["items"]] == [ids[0]]
    _problem(api.client.get("/v1/devices?cursor=%%%", headers=api.admin), 400)
    _problem(api.client.get("/v1/devices?limit=0", headers=api.admin), 422)


def test_enable_disable_delete(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    off = api.client.patch(
        f"/v1/devices/{device.id}", json={"status": "disabled"}, headers=api.admin
    ).json()
    assert off["status"] == "disabled"
    on = api.client.patch(
        f"/v1/devices/{device.id}", json={"status": "active"}, headers=api.admin
    ).json()
    assert on["status"] == "active"
    _problem(
        api.client.patch(f"/v1/devices/{device.id}", json={"status": "revoked"}, headers=api.admin),
        422,
    )
    token = device.tokens()["access_token"]
    assert api.client.delete(f"/v1/devices/{device.id}", headers=api.admin).status_code == 204
    _problem(api.client.get(f"/v1/devices/{device.id}", headers=api.admin), 404)
    assert api.introspect(token) == {"active": False}


def test_credential_keys_add_remove_and_expire(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    second = generate_key("es256")
    now = int(api.clock())
    added = api.client.post(
        f"/v1/devices/{device.id}/keys",
        headers=api.admin,
        json={"public_key": public_pem(second), "expires_at": now + 3600},
    )
    assert added.status_code == 201
    kid = added.json()["kid"]
    _problem(
        api.client.post(
            f"/v1/devices/{device.id}/keys",
            headers=api.admin,
            json={"public_key": public_pem(second)},
        ),
        409,
    )
    assert api.token(device.grant_form(device.assertion(key=second))).status_code == 200
    api.clock.advance(3601)
    assert api.token(device.grant_form(device.assertion(key=second))).status_code == 401
    old_kid = device.created["credential_keys"][0]["kid"]
    assert (
        api.client.delete(f"/v1/devices/{device.id}/keys/{old_kid}", headers=api.admin).status_code
        == 204
    )
    assert api.token(device.grant_form()).status_code == 401
    _problem(api.client.delete(f"/v1/devices/{device.id}/keys/{old_kid}", headers=api.admin), 404)
    actions = [
        e["action"]
        for e in api.client.get(f"/v1/audit?device_id={device.id}", headers=api.admin).json()[
            "items"
        ]
    ]
    assert actions.count("key.add") == 2 and "key.remove" in actions
    assert kid


def test_batch_is_atomic_by_default(api: Api, fleet: str) -> None:
    rows = [
        {"device_id": "b-1", "fleet": fleet, "public_key": public_pem(generate_key())},
        {"device_id": "b-2", "fleet": fleet, "public_key": "garbage"},
    ]
    response = api.client.post("/v1/devices:batch", json={"devices": rows}, headers=api.admin)
    body = _problem(response, 400)
    assert [r["index"] for r in body["results"]] == [1]
    _problem(api.client.get("/v1/devices/b-1", headers=api.admin), 404)


def test_batch_per_row_and_idempotent(api: Api, fleet: str) -> None:
    rows = [
        {"device_id": "b-1", "fleet": fleet, "public_key": public_pem(generate_key())},
        {"device_id": "b-2", "fleet": fleet, "public_key": "garbage"},
        {"device_id": "b-3", "fleet": fleet},
    ]
    first = api.client.post(
        "/v1/devices:batch", json={"devices": rows, "atomic": False}, headers=api.admin
    ).json()["results"]
    assert [r["status"] for r in first] == ["created", "error", "created"]
    assert first[2]["enrollment_token"]
    again = api.client.post(
        "/v1/devices:batch", json={"devices": [rows[0], rows[2]]}, headers=api.admin
    ).json()["results"]
    assert [r["status"] for r in again] == ["exists", "exists"]
    assert "enrollment_token" not in again[1]
    assert api.client.get("/v1/devices/b-2", headers=api.admin).status_code == 404


def test_device_own_acl_replaces_the_fleets(api: Api, fleet: str) -> None:
    backend = api.device(fleet, acl={"publish": [], "subscribe": ["fleets/+/up/+"]})
    claims = api.introspect(backend.tokens()["access_token"])
    assert claims["acl"] == {"pub": [], "sub": ["fleets/+/up/+"]}


def test_secrets_never_appear_in_logs_or_reads(api: Api, caplog) -> None:
    caplog.set_level("DEBUG")
    fleet = api.fleet(allow_client_secret=True)["name"]
    created = api.client.post("/v1/devices", json={"fleet": fleet}, headers=api.admin).json()
    basic = base64.b64encode(f"{created['device_id']}:{created['client_secret']}".encode())
    tokens = api.token(
        {"grant_type": "client_credentials"}, headers={"Authorization": "Basic " + basic.decode()}
    ).json()
    audit = api.client.get("/v1/audit?limit=1000", headers=api.admin).text
    device = api.client.get(f"/v1/devices/{created['device_id']}", headers=api.admin).text
    for secret in (
        created["client_secret"],
        tokens["refresh_token"],
        tokens["access_token"],
        api.admin_key,
    ):
        assert secret not in caplog.text and secret not in audit and secret not in device
