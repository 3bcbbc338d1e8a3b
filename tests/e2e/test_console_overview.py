"""The console's overview in a real browser against a real `credbroker up` (embedded
broker), with real MQTT clients: live sessions now, the last hour's CONNECTs and grants
per minute (read through the charts' accessible tables), and the time from a
revocation to its session's cut."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser import Browsed, sign_in
from tests.stack import Client, Stack, start_stack

CONNECTS = "MQTT CONNECTs per minute: accepted by the embedded broker, refused by reason: totals"
GRANTS = "Token grants per minute: issued and refreshed: totals"
REVOCATIONS = "The last 10 revocations and disablings, with the time to their first session cut"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("overview")), seed_admin=False)
    yield started
    started.stop()


def _reload_until(page: Page, locator: Locator, text: str | re.Pattern[str]) -> None:
    """Reload the page until `locator` shows `text` (what the page shows is read when it
    is served), failing after a few seconds."""
    for _ in range(30):
        try:
            expect(locator).to_have_text(text, timeout=250)
            return
        except AssertionError:
            page.reload()
    expect(locator).to_have_text(text)


def _total(page: Page, table: str, series: str | re.Pattern[str]) -> Locator:
    row = page.get_by_role("table", name=table).get_by_role("row").filter(has_text=series)
    return row.get_by_role("cell")


def test_live_sessions_connects_and_grants_of_the_last_hour(stack: Stack, browsed: Browsed) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, device.token())  # one grant, one accepted CONNECT
    assert client.connected.wait(10)
    token = device.token()  # a second grant
    tampered = Client(stack, device.id, token[:-8] + ("A" * 8 if token[-1] != "A" else "B" * 8))
    assert tampered.answered.wait(10) and tampered.connect_rc == 134

    sign_in(page, stack.base, stack.admin_key)
    _reload_until(page, page.locator("#live-total"), "1")
    embedded = page.get_by_role("table", name="Live sessions by broker").get_by_role("row")
    expect(embedded.filter(has_text="embedded").get_by_role("cell")).to_have_text("1")

    _reload_until(page, _total(page, CONNECTS, "accepted (embedded broker)"), "1")
    expect(_total(page, CONNECTS, "refused:")).to_have_text("1")
    expect(_total(page, GRANTS, "token.issue")).to_have_text("2")
    expect(_total(page, GRANTS, "token.refresh")).to_have_text("0")
    chart = page.get_by_role("img", name=re.compile("MQTT CONNECTs per minute"))
    expect(chart).to_be_visible()
    description = chart.get_attribute("aria-labelledby") or ""
    assert description.endswith("connects-desc")
    expect(page.locator("#connects-desc")).to_contain_text("accepted (embedded broker) 1")
    client.close()


def test_a_revocation_shows_the_time_to_its_session_cut(stack: Stack, browsed: Browsed) -> None:
    page = browsed.page
    fleet = stack.fleet()
    device, idle = stack.device(fleet), stack.device(fleet)
    client = Client(stack, device.id, device.token())
    assert client.connected.wait(10)
    assert device.api("POST", ":revoke").status_code == 200
    assert client.disconnected.wait(5), "the revoked device's session was not cut"
    assert idle.api("POST", ":revoke").status_code == 200  # it had no session

    sign_in(page, stack.base, stack.admin_key)
    rows = page.get_by_role("table", name=REVOCATIONS).get_by_role("row")
    _reload_until(page, rows.filter(has_text=device.id).locator(".cut"), re.compile(r"≤ \d+ ms"))
    expect(rows.filter(has_text=idle.id).locator(".cut")).to_have_text("no live session")
    _reload_until(page, page.locator("#live-total"), "0")
