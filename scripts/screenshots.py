"""The console screenshots in README: a real `credbroker up` with a small fleet, a few
real MQTT clients, a refused CONNECT and a revocation, seen by Debian's chromium.

    .venv/bin/python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser import page_of
from tests.stack import Client, Stack, start_stack


def _fleet(stack: Stack, name: str) -> None:
    answer = stack.http.post(
        f"{stack.base}/v1/fleets",
        headers=stack.admin,
        json={
            "name": name,
            "token_ttl": 600,
            "acl": {"publish": ["devices/{device_id}/#"], "subscribe": ["devices/{device_id}/#"]},
        },
    )
    assert answer.status_code == 201, answer.text


def _stage(stack: Stack) -> str:
    """A fleet at work: connected devices, a disabled one, a revoked one, a refused
    CONNECT. The id of a connected device."""
    _fleet(stack, "sensors")
    _fleet(stack, "cameras")
    devices = [stack.device("sensors") for _ in range(6)] + [stack.device("cameras")]
    clients = [Client(stack, d.id, d.token()) for d in [*devices[:4], devices[6]]]
    for client in clients:
        assert client.connected.wait(10)
    tampered = devices[4].token()[:-6] + "AAAAAA"
    refused = Client(stack, devices[4].id, tampered)
    assert refused.answered.wait(10)
    assert devices[5].api("PATCH", json={"status": "disabled"}).status_code == 200
    assert devices[6].api("POST", ":revoke").status_code == 200
    assert clients[-1].disconnected.wait(5)  # its cut latency shows on the overview
    return devices[0].id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--width", type=int, default=1280, help="of the viewport (390: a phone)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            device_id = _stage(stack)
            with page_of(stack.base) as browsed:
                page = browsed.page
                page.set_viewport_size({"width": args.width, "height": 900})
                page.goto(f"{stack.base}/console/sign-in")
                page.get_by_label("Admin API key").fill(stack.admin_key)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_role("heading", name="Overview")).to_be_visible()
                page.screenshot(path=str(args.out / "console-overview.png"), full_page=True)
                page.goto(f"{stack.base}/console/devices/{device_id}")
                page.screenshot(path=str(args.out / "console-device.png"), full_page=True)
                assert browsed.foreign == []
        finally:
            stack.stop()
    print(f"wrote {args.out}/console-overview.png and {args.out}/console-device.png")


if __name__ == "__main__":
    main()
