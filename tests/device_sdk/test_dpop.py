"""The SDK's DPoP proofs against the real API in uvicorn: its refresh family is bound
to the device key, so a copy of its state file without the key cannot refresh."""

from __future__ import annotations

import secrets
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from device_sdk import DeviceRevoked, generate_key, public_pem
from device_sdk._keys import DevicePrivateKey
from device_sdk._tokens import REFRESH_FILE, TokenSource
from provisioning import Settings, create_app
from tests.stack import free_port, wait_for


@dataclass
class Served:
    base: str
    http: httpx.Client

    def device(self, alg: str) -> tuple[str, DevicePrivateKey]:
        fleet = f"f-{uuid.uuid4().hex[:8]}"
        acl = {"publish": ["d/{device_id}"], "subscribe": []}
        assert self.http.post("/v1/fleets", json={"name": fleet, "acl": acl}).status_code == 201
        key = generate_key(alg)  # type: ignore[arg-type]
        device_id = f"d-{uuid.uuid4().hex[:10]}"
        body = {"device_id": device_id, "fleet": fleet, "public_key": public_pem(key)}
        assert self.http.post("/v1/devices", json=body).status_code == 201
        return device_id, key

    def refresh(self, token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": token}
        return self.http.post("/oauth2/token", data=form)

    def audit(self, device_id: str, action: str) -> list[dict[str, Any]]:
        query = {"device_id": device_id, "action": action}
        return list(self.http.get("/v1/audit", params=query).json()["items"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port, admin_key = free_port(), "adm_" + secrets.token_hex(24)
    base = f"http://127.0.0.1:{port}"
    data = tmp_path_factory.mktemp("dpop") / "data"
    app = create_app(Settings(data_dir=data, admin_key=admin_key, issuer=base))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn")
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        yield Served(base, http)
    server.should_exit = True
    thread.join(10)


def _source(served: Served, device_id: str, key: DevicePrivateKey, state: Path) -> TokenSource:
    return TokenSource(api_url=served.base, device_id=device_id, private_key=key, state_dir=state)


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_the_sdk_binds_its_refresh_token_to_its_key(
    served: Served, tmp_path: Path, alg: str
) -> None:
    device_id, key = served.device(alg)
    source = _source(served, device_id, key, tmp_path)
    source.fetch()
    assert source.dpop
    source.fetch()  # the refresh grant, with a proof
    assert len(served.audit(device_id, "token.refresh")) == 1
    stored = (tmp_path / REFRESH_FILE).read_text()
    refused = served.refresh(stored)  # the token alone
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    source.fetch()
    assert len(served.audit(device_id, "token.refresh")) == 2


def test_a_copied_state_file_without_the_key_cannot_refresh(served: Served, tmp_path: Path) -> None:
    device_id, key = served.device("ed25519")
    source = _source(served, device_id, key, tmp_path / "device")
    source.fetch()
    shutil.copytree(tmp_path / "device", tmp_path / "copy")
    thief = _source(served, device_id, generate_key(), tmp_path / "copy")
    with pytest.raises(DeviceRevoked):  # the refresh is refused, then its assertion
        thief.fetch()
    refused = served.audit(device_id, "token.refresh_token")
    assert [e["detail"]["error"] for e in refused] == ["invalid_grant"]
    source.fetch()  # the device's family lives: it refreshes, no new assertion
    assert len(served.audit(device_id, "token.refresh")) == 1
    assert len(served.audit(device_id, "token.issue")) == 1
