"""Refreshes that arrive together at a real server: 100 refresh families, each refreshed
at once over its own connection to a `credbroker api` (uvicorn) on each database. Distinct
families share nothing a grant writes, so none may fail. On PostgreSQL the grants run in
threads (anyio's 40), each on a connection of the engine's pool (10 + 20 overflow): 100 at
once hold all 30 and the rest wait for one. On SQLite they share group commits."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from device_sdk import assertion_form
from tests.databases import postgres_database
from tests.stack import BIN, Stack, free_port

DEVICES = 25
FAMILIES_EACH = 4  # 100 families: several of one device refreshed at once, too


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """`credbroker api`, one process, on a free port; healthy before the test starts."""
    admin_key = "adm_" + secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDBROKER_")}
    env["CREDBROKER_ADMIN_KEY"] = admin_key
    with ExitStack() as cleanup:
        if request.param == "postgresql":
            env["CREDBROKER_DATABASE_URL"] = cleanup.enter_context(postgres_database())
        port = free_port()
        command = [str(BIN / "credbroker"), "api", "--http-port", str(port)]
        command += ["--data-dir", str(tmp_path / "data")]
        stack = Stack(
            f"http://127.0.0.1:{port}",
            0,
            tmp_path / "data",
            admin_key,
            command,
            env,
            tmp_path / "api.log",
        )
        cleanup.callback(stack.stop)  # before the database is dropped
        stack.launch()
        yield stack


def _refresh_all(base: str, tokens: list[str]) -> list[httpx.Response]:
    """One refresh per token, all sent at once, each on a connection of its own."""

    async def send() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            forms = [{"grant_type": "refresh_token", "refresh_token": t} for t in tokens]
            return list(await asyncio.gather(*(http.post("/oauth2/token", data=f) for f in forms)))

    return asyncio.run(send())


def test_100_refresh_families_refreshed_at_once_all_succeed(api: Stack) -> None:
    fleet = api.fleet()
    endpoint = api.base + "/oauth2/token"
    refresh_tokens = []
    for device in [api.device(fleet) for _ in range(DEVICES)]:
        for _ in range(FAMILIES_EACH):  # each private_key_jwt grant starts a family
            form = assertion_form(device.key, device_id=device.id, audience=endpoint)
            response = api.http.post(endpoint, data=form)
            assert response.status_code == 200, response.text
            refresh_tokens.append(response.json()["refresh_token"])

    for _ in range(2):  # the new refresh tokens work once more, all at once again
        answers = _refresh_all(api.base, refresh_tokens)
        failed = [(a.status_code, a.text) for a in answers if a.status_code != 200]
        assert not failed, f"{len(failed)} of {len(answers)} refreshes failed: {failed[:5]}"
        pairs = [a.json() for a in answers]
        new_tokens = [p["refresh_token"] for p in pairs]
        assert all(p["access_token"] and p["token_type"] == "Bearer" for p in pairs)
        assert len(set(new_tokens)) == len(new_tokens)
        assert not set(new_tokens) & set(refresh_tokens)
        refresh_tokens = new_tokens
