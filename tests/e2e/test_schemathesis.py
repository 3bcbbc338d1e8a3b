"""schemathesis over the whole API of a real `credbroker up`, stateful phase included
(the document's links from created devices and fleets, and the links schemathesis
infers): no server error, and every answer as the OpenAPI document says (issue 10).

The `st` command as CI would run it, bounded (`--max-examples`) and with a fixed seed,
so a run is the same each time; the stack and its data directory are its own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import BIN, Stack, start_stack

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
MAX_EXAMPLES = 15
SEED = 1


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    started = start_stack(tmp_path)
    yield started
    started.stop()


def test_the_api_answers_as_its_openapi_document_says(stack: Stack, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            str(BIN / "st"),
            "run",
            f"{stack.base}/openapi.json",
            "--header",
            f"Authorization: Bearer {stack.admin_key}",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "✅  Stateful" in report, report  # the stateful phase ran its scenarios, and passed
