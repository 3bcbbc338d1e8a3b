"""Each deployable imports only what it runs (STYLE.md, Seams)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _loaded(imports: str, watched: set[str]) -> list[str]:
    code = f"import json, sys; {imports}; print(json.dumps(sorted({watched!r} & set(sys.modules))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("imports", "forbidden"),
    [
        # The broker, embedded or standalone, runs without the API's web and ORM stack.
        ("import broker.server, broker.factory", {"fastapi", "sqlmodel", "provisioning"}),
        # `credbroker broker`, its command line parsed and everything its run imports.
        (
            "import asyncio; asyncio.run = lambda main: main.close(); "
            "import credbroker.cli, credbroker.cli.standalone, credbroker.database, "
            "broker.factory, broker.settings; "
            "credbroker.cli.app(['broker'], standalone_mode=False)",
            {"fastapi", "sqlmodel", "provisioning", "uvicorn"},
        ),
        # The API uses the shared decision, not the MQTT edge.
        ("import provisioning.app, provisioning.api.hooks", {"broker", "amqtt"}),
        # The contract package's decision needs neither a database nor a web framework.
        ("import credbroker.decision", {"sqlalchemy", "fastapi", "sqlmodel", "broker"}),
    ],
)
def test_a_deployable_imports_only_what_it_runs(imports: str, forbidden: set[str]) -> None:
    assert _loaded(imports, forbidden) == []
