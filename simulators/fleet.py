"""Provisioning virtual devices through the admin API, as an operator would."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from device_sdk import generate_key, public_pem
from device_sdk._keys import DevicePrivateKey

BATCH = 500  # devices per POST /v1/devices:batch


class ProvisioningFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class VirtualIdentity:
    device_id: str
    key: DevicePrivateKey


@dataclass(frozen=True)
class Topics:
    """The simulation's topic layout; every run has its own prefix."""

    prefix: str

    def telemetry(self, device_id: str) -> str:
        return f"{self.prefix}/{device_id}/telemetry"

    def commands(self, device_id: str) -> str:
        return f"{self.prefix}/{device_id}/commands"


class Operator:
    """Admin API calls the simulation needs."""

    def __init__(self, http: httpx.AsyncClient, api: str, admin_key: str) -> None:
        self.http, self.api = http, api.rstrip("/")
        self.headers = {"Authorization": f"Bearer {admin_key}"}

    async def _call(self, method: str, path: str, expect: int, **kw: Any) -> dict[str, Any]:
        response = await self.http.request(method, self.api + path, headers=self.headers, **kw)
        if response.status_code != expect:
            raise ProvisioningFailed(f"{method} {path}: {response.status_code} {response.text}")
        return dict(response.json()) if response.content else {}

    async def fleet(self, name: str, *, ttl: int, publish: list[str], subscribe: list[str]) -> str:
        body = {"name": name, "token_ttl": ttl, "acl": {"publish": publish, "subscribe": subscribe}}
        await self._call("POST", "/v1/fleets", 201, json=body)
        return name

    async def require_proofs(self, fleet: str) -> None:
        """Turn on `proof_of_possession` (README, Proof of possession on MQTT)."""
        await self._call("PATCH", f"/v1/fleets/{fleet}", 200, json={"proof_of_possession": True})

    async def devices(
        self, fleet: str, count: int, prefix: str, acl: dict[str, list[str]] | None = None
    ) -> list[VirtualIdentity]:
        """`count` devices, each with a key pair of its own made here."""
        made = [
            VirtualIdentity(f"{prefix}-{n:05d}", generate_key())
            for n in range(count)  # Ed25519: ~50 us a key
        ]
        for start in range(0, count, BATCH):
            rows = [
                {"device_id": v.device_id, "fleet": fleet, "public_key": public_pem(v.key)}
                | ({"acl": acl} if acl else {})
                for v in made[start : start + BATCH]
            ]
            await self._call("POST", "/v1/devices:batch", 200, json={"devices": rows})
            await asyncio.sleep(0)
        return made

    async def revoke(self, device_id: str) -> None:
        await self._call("POST", f"/v1/devices/{device_id}:revoke", 200)

    async def jwks(self, device_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/devices/{device_id}/jwks.json", 200)


def run_id() -> str:
    return "sim" + uuid.uuid4().hex[:8]
