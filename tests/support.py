"""Shared factories: a provisioning app on SQLite in a temp dir, devices, assertions."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi.testclient import TestClient

from device_sdk import generate_key, public_pem
from device_sdk._keys import DevicePrivateKey
from provisioning import Settings, create_app

ISSUER = "http://testserver"
TOKEN_URL = ISSUER + "/oauth2/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class FakeClock:
    """A clock the test moves by hand: expiry without sleeping."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    client: TestClient
    admin_key: str
    clock: FakeClock
    settings: Settings

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    @property
    def engine(self) -> Any:
        return self.client.app.state.services.engine  # type: ignore[attr-defined]

    def fleet(self, name: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {
            "name": name or f"f-{uuid.uuid4().hex[:8]}",
            "acl": {
                "publish": ["devices/{device_id}/#", "fleets/{fleet}/up/{device_id}"],
                "subscribe": ["devices/{device_id}/cmd/#", "fleets/{fleet}/down/+"],
            },
            **extra,
        }
        response = self.client.post("/v1/fleets", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def device(
        self, fleet: str, *, alg: str = "ed25519", device_id: str | None = None, **extra: Any
    ) -> Device:
        key = generate_key(alg)  # type: ignore[arg-type]
        device_id = device_id or f"d-{uuid.uuid4().hex[:10]}"
        response = self.client.post(
            "/v1/devices",
            headers=self.admin,
            json={"device_id": device_id, "fleet": fleet, "public_key": public_pem(key), **extra},
        )
        assert response.status_code == 201, response.text
        return Device(self, device_id, key, response.json())

    def token(self, form: dict[str, str], **kw: Any) -> Any:
        return self.client.post("/oauth2/token", data=form, **kw)

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.client.post("/oauth2/introspect", data={"token": token}, headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())


@dataclass
class Device:
    api: Api
    id: str
    key: DevicePrivateKey
    created: dict[str, Any] = field(default_factory=dict)

    def assertion(
        self, key: Any = None, alg: str | None = None, headers: Any = None, **claims: Any
    ) -> str:
        now = int(self.api.clock())
        body = {
            "iss": self.id,
            "sub": self.id,
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        key = key or self.key
        if alg is None:
            alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
        return jwt.encode(body, key, algorithm=alg, headers=headers)

    def grant_form(self, assertion: str | None = None) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion or self.assertion(),
        }

    def tokens(self) -> dict[str, Any]:
        response = self.api.token(self.grant_form())
        assert response.status_code == 200, response.text
        return dict(response.json())


def make_api(tmp_path: Path, **settings: Any) -> Api:
    admin_key = "adm_" + secrets.token_hex(24)
    clock = FakeClock()
    config = Settings(data_dir=tmp_path / "data", admin_key=admin_key, issuer=ISSUER, **settings)
    return Api(TestClient(create_app(config, clock=clock)), admin_key, clock, config)


def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
