"""README's device SDK snippet, run as written next to a real `credbroker up`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.stack import Stack

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    section = README.read_text().split("## Device SDK", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "README's Device SDK section has no python snippet"
    return found.group(1)


def test_readme_sdk_snippet_subscribes_where_the_walkthrough_fleet_allows(
    stack: Stack, tmp_path: Path
) -> None:
    code = _snippet()
    # The stack runs on free ports, not README's 8000 and 1883 (1883 is taken here).
    assert '"http://127.0.0.1:8000"' in code and "mqtt_port=1883," in code
    code = code.replace('"http://127.0.0.1:8000"', repr(stack.base))
    code = code.replace("mqtt_port=1883,", f"mqtt_port={stack.mqtt_port},")
    assert stack.cli("keygen", "--out", str(tmp_path / "keys")).returncode == 0
    made = stack.cli(
        "fleet", "create", "sensors", "--publish", "devices/{device_id}/#",
        "--subscribe", "devices/{device_id}/cmd/#",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    made = stack.cli(
        "device", "create", "--fleet", "sensors", "--id", "dev-42",
        "--public-key", str(tmp_path / "keys" / "device.pub"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "granted QoS 1" in lines
    assert "refused devices/dev-7/cmd/#" in lines
    assert "Traceback" not in run.stderr
