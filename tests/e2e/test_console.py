"""The operator console in a real browser (Debian's chromium) against a real
`credbroker up`, with a real MQTT client: sign in, find a device, revoke it and see the
client cut; what a key without a scope may not do; what another site may not make us do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from device_sdk import generate_key, public_pem
from tests.browser import Browsed, sign_in
from tests.stack import Client, Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(Path(tmp_path_factory.mktemp("console")), seed_admin=False)
    yield started
    started.stop()


def _key(stack: Stack, *scopes: str) -> str:
    answer = stack.http.post(
        f"{stack.base}/v1/admin-keys", headers=stack.admin, json={"scopes": list(scopes)}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


def test_sign_in_find_a_device_revoke_it_and_its_client_is_cut(
    stack: Stack, browsed: Browsed
) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, device.token())
    assert client.connected.wait(10)
    sign_in(page, stack.base, stack.admin_key)

    # The key is nowhere in the browser: only an HttpOnly session cookie.
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["credbroker_console"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert stack.admin_key not in str(cookies) + page.content() + page.url
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"

    page.get_by_role("link", name="Devices").click()
    page.get_by_label("Device id starts with").fill(device.id[:8])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=device.id).click()
    expect(page.locator("#status")).to_have_text("active")

    page.get_by_role("button", name="Revoke").click()  # asks first, saying what happens
    expect(page.get_by_role("alert")).to_contain_text("stays revoked")
    assert not client.disconnected.is_set()
    page.get_by_role("button", name="Yes, revoke").click()
    expect(page.locator("#status")).to_have_text("revoked")
    assert client.disconnected.wait(5), "the revoked device's MQTT session was not cut"

    events = page.get_by_role("table", name="The device's last 20 events")
    expect(events).to_contain_text("device.revoke")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{stack.base}/console/sign-in")
    page.goto(f"{stack.base}/console/devices")
    expect(page).to_have_url(f"{stack.base}/console/sign-in")


def test_a_refused_connect_shows_on_the_overview(stack: Stack, browsed: Browsed) -> None:
    device = stack.device(stack.fleet())
    token = device.token()
    tampered = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    client = Client(stack, device.id, tampered)
    assert client.answered.wait(10) and client.connect_rc == 134  # paho: CONNACK 4
    sign_in(browsed.page, stack.base, stack.admin_key)
    refusals = browsed.page.get_by_role("table", name="The last 20 refused requests")
    expect(refusals.get_by_role("row").filter(has_text=device.id).first).to_be_visible()


def test_a_wrong_key_is_refused(stack: Stack, browsed: Browsed) -> None:
    page = browsed.page
    page.goto(f"{stack.base}/console/sign-in")
    page.get_by_label("Admin API key").fill("adm_" + "x" * 40)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown, revoked or expired")
    assert page.context.cookies() == []


def test_a_read_only_key_sees_no_action_and_is_refused_if_it_posts(
    stack: Stack, browsed: Browsed
) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    sign_in(page, stack.base, _key(stack, "devices:read"))
    page.goto(f"{stack.base}/console/devices/{device.id}")
    expect(page.get_by_text("This admin key may only read.")).to_be_visible()
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)
    expect(page.get_by_role("button", name="Log out everywhere")).to_have_count(0)

    # Posting anyway, from the page itself with its own CSRF token: 403, nothing done.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(
        f"{stack.base}/console/devices/{device.id}/revoke",
        form={"csrf_token": csrf or "", "confirmed": "yes"},
        headers={"Origin": stack.base},
    )
    assert answer.status == 403
    assert device.api("GET").json()["status"] == "active"


def test_a_cross_site_post_is_refused(stack: Stack, browsed: Browsed) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    sign_in(page, stack.base, stack.admin_key)
    url = f"{stack.base}/console/devices/{device.id}/disable"
    # With the session cookie but without the CSRF token (what a forged form sends).
    assert page.request.post(url, form={"confirmed": "yes"}).status == 403
    # With a token, from another origin.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = page.request.post(
        url,
        form={"csrf_token": csrf or "", "confirmed": "yes"},
        headers={"Origin": "https://attacker.example"},
    )
    assert forged.status == 403
    assert device.api("GET").json()["status"] == "active"


def test_pages_without_a_session_lead_to_sign_in(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base) as http:
        for path in ("/console", "/console/devices", "/console/devices/x"):
            answer = http.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
        refused = http.post("/console/devices/x/revoke", data={"confirmed": "yes"})
        assert refused.status_code == 303 and refused.headers["location"] == "/console/sign-in"
        page = http.get("/console/sign-in")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


def test_the_audit_log_filters_and_tails_live(stack: Stack, browsed: Browsed) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    sign_in(page, stack.base, stack.admin_key)
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Device").fill(device.id)
    page.get_by_role("button", name="Filter").click()
    table = page.get_by_role("table", name="Audit events, newest first")
    expect(table).to_contain_text("device.create")

    page.get_by_label("Live tail").check()
    expect(page.get_by_role("status")).to_have_text("Live")
    refused = Client(stack, device.id, "not-a-token")  # the broker audits the refusal
    assert refused.answered.wait(10)
    row = table.get_by_role("row").filter(has_text="mqtt.connect")
    expect(row.first).to_contain_text("refused")
    expect(page.get_by_role("status")).to_contain_text("new event")
    # Another device's events are not in this device's tail: once a later event of
    # this device is in, the other's (earlier) one has had its chance to show.
    other = stack.device(stack.fleet())
    assert Client(stack, device.id, "still-not-a-token").answered.wait(10)
    expect(row).to_have_count(2)
    expect(table.get_by_role("row").filter(has_text=other.id)).to_have_count(0)


def test_a_fleet_is_edited_with_its_errors_shown_by_their_fields(
    stack: Stack, browsed: Browsed
) -> None:
    page = browsed.page
    fleet = stack.fleet(ttl=600)
    sign_in(page, stack.base, stack.admin_key)
    page.get_by_role("link", name="Fleets").click()
    page.get_by_role("link", name=fleet).click()

    page.get_by_label("Publish filters").fill("devices/{device_id}/#\nbad/#/topic")
    page.get_by_label("Access token lifetime (seconds)").fill("ten")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("2 fields to fix")
    expect(page.get_by_label("Publish filters")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#publish-error")).to_contain_text("bad/#/topic")
    expect(page.locator("#token_ttl-error")).to_contain_text("whole number")
    expect(page.get_by_label("Publish filters")).to_have_value("devices/{device_id}/#\nbad/#/topic")
    got = stack.http.get(f"{stack.base}/v1/fleets/{fleet}", headers=stack.admin).json()
    assert got["token_ttl"] == 600  # nothing was written

    page.get_by_label("Publish filters").fill("devices/{device_id}/#\nfleets/{fleet}/up")
    page.get_by_label("Access token lifetime (seconds)").fill("300")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    got = stack.http.get(f"{stack.base}/v1/fleets/{fleet}", headers=stack.admin).json()
    assert got["token_ttl"] == 300
    assert got["acl"]["publish"] == ["devices/{device_id}/#", "fleets/{fleet}/up"]


def test_provision_one_device_with_a_key_and_one_with_a_token_shown_once(
    stack: Stack, browsed: Browsed, tmp_path: Path
) -> None:
    page = browsed.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    fleet = stack.fleet()
    sign_in(page, stack.base, stack.admin_key)
    page.get_by_role("link", name="Provision").click()

    key_file = tmp_path / "device.pub"
    key_file.write_text(public_pem(generate_key()))
    page.get_by_label("Fleet", exact=True).fill(fleet)
    page.get_by_label("Device id (optional: one is made)").fill("console-one")
    page.get_by_label("or uploaded").set_input_files(str(key_file))
    page.get_by_role("button", name="Create device", exact=True).click()
    expect(page.get_by_role("heading", name="Device console-one created")).to_be_visible()
    got = stack.http.get(f"{stack.base}/v1/devices/console-one", headers=stack.admin).json()
    assert got["fleet"] == fleet and len(got["credential_keys"]) == 1

    page.goto(f"{stack.base}/console/provision")
    page.get_by_label("Fleet", exact=True).fill(fleet)
    page.get_by_role("button", name="Create device", exact=True).click()
    token = page.locator("#secret").text_content() or ""
    assert token.startswith("cbe_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == token

    page.goto(f"{stack.base}/console/provision")
    page.get_by_label("Fleet", exact=True).fill(fleet)
    page.get_by_label("Device id (optional: one is made)").fill("bad id!")
    page.get_by_role("button", name="Create device", exact=True).click()
    expect(page.get_by_label("Device id (optional: one is made)")).to_have_attribute(
        "aria-invalid", "true"
    )


def test_provision_a_batch_from_csv_with_a_result_per_row(
    stack: Stack, browsed: Browsed, tmp_path: Path
) -> None:
    page = browsed.page
    fleet = stack.fleet()
    existing = stack.device(fleet)
    pem = public_pem(generate_key()).replace("\n", "\\n")
    rows = [
        "device_id,fleet,public_key",
        f'batch-a,{fleet},"{public_pem(generate_key())}"',
        f"batch-b,{fleet},",
        f"bad id,{fleet},",
        f"{existing.id},{fleet},",
        f"batch-c,no-such-fleet,{pem}",
    ]
    sheet = tmp_path / "devices.csv"
    sheet.write_text("\n".join(rows) + "\n")
    sign_in(page, stack.base, stack.admin_key)
    page.goto(f"{stack.base}/console/provision")
    page.get_by_label("CSV file", exact=True).set_input_files(str(sheet))
    page.get_by_role("button", name="Create devices").click()
    expect(page.get_by_role("status")).to_have_text("2 created, 1 already there, 2 refused.")
    table = page.get_by_role("table", name="One row per CSV line")
    expect(table.get_by_role("row").filter(has_text="batch-b")).to_contain_text("cbe_")
    expect(table.get_by_role("row").filter(has_text="bad id")).to_contain_text("error")
    for device_id, status in (("batch-a", 200), ("batch-b", 200), ("batch-c", 404)):
        got = stack.http.get(f"{stack.base}/v1/devices/{device_id}", headers=stack.admin)
        assert got.status_code == status


def test_rotate_the_signing_key_and_remove_a_credential_key(stack: Stack, browsed: Browsed) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    old = device.token()
    kid = device.api("GET").json()["credential_keys"][0]["kid"]
    sign_in(page, stack.base, stack.admin_key)
    page.goto(f"{stack.base}/console/devices/{device.id}")

    page.get_by_label("at once").check()
    page.get_by_role("button", name="Rotate signing key").click()
    expect(page.get_by_role("alert")).to_contain_text("stop working now")
    page.get_by_role("button", name="Yes, rotate the signing key").click()
    expect(page.get_by_role("status")).to_have_text("Done: rotated.")
    versions = page.get_by_role("table", name="Newest first")
    expect(versions.get_by_role("row").nth(1)).to_contain_text(f"{device.id}#2")
    refused = Client(stack, device.id, old)  # the old version's token no longer works
    assert refused.answered.wait(10) and refused.connect_rc == 134

    page.get_by_role("button", name=f"Remove key {kid}").click()
    expect(page.get_by_role("alert")).to_contain_text("can no longer prove itself")
    page.get_by_role("button", name="Yes, remove a credential key").click()
    expect(page.get_by_role("status")).to_have_text("Done: key removed.")
    assert device.api("GET").json()["credential_keys"] == []


def test_a_device_page_lists_its_sessions_ends_one_and_logs_out_everywhere(
    stack: Stack, browsed: Browsed
) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, device.token())
    device.token()  # a second sign-in: a second session, with no connection
    assert client.connected.wait(10)
    (connection,) = device.api("GET", "/sessions").json()["connections"]
    ours = connection["family"]
    (other,) = [
        f["id"] for f in device.api("GET", "/sessions").json()["families"] if f["id"] != ours
    ]
    sign_in(page, stack.base, stack.admin_key)
    page.goto(f"{stack.base}/console/devices/{device.id}")

    families = page.get_by_role("table", name="Refresh families: one per sign-in of the device")
    expect(families.get_by_role("row")).to_have_count(3)  # the header and two sessions
    connections = page.get_by_role("table", name="Live MQTT connections")
    expect(connections.get_by_role("row").nth(1)).to_contain_text(ours)
    expect(connections.get_by_role("row").nth(1)).to_contain_text("embedded")

    page.get_by_role("button", name=f"End session {other}").click()
    expect(page.get_by_role("alert")).to_contain_text("other sessions go on")
    page.get_by_role("button", name="Yes, end a session").click()
    expect(page.get_by_role("status")).to_have_text("Done: session ended.")
    expect(families.get_by_role("row")).to_have_count(2)
    expect(families).not_to_contain_text(other)
    expect(connections.get_by_role("row").nth(1)).to_contain_text(ours)
    assert not client.disconnected.is_set()  # the connection of the other session lives

    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("alert")).to_contain_text("stays active")
    page.get_by_role("button", name="Yes, log out everywhere").click()
    expect(page.get_by_role("status")).to_have_text("Done: logged out.")
    assert client.disconnected.wait(5), "the logged-out device's MQTT session was not cut"
    expect(page.locator("#status")).to_have_text("active")
    page.reload()
    expect(connections).to_contain_text("None.")
    expect(families).to_contain_text("None.")
    assert device.token()  # it may sign in again at once
    events = page.get_by_role("table", name="The device's last 20 events")
    expect(events).to_contain_text("device.logout")


def test_every_page_fits_a_phone_and_works_from_the_keyboard(
    stack: Stack, browsed: Browsed
) -> None:
    page = browsed.page
    device = stack.device(stack.fleet())
    client = Client(stack, device.id, device.token())
    assert client.connected.wait(10)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{stack.base}/console/sign-in")
    page.get_by_label("Admin API key").focus()  # the form is reached and sent by keyboard
    page.keyboard.type(stack.admin_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    for path in ("", "/devices", f"/devices/{device.id}", "/fleets", "/audit", "/provision"):
        page.goto(f"{stack.base}/console{path}")
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"/console{path} is {wide}px wider than a phone's screen"
    client.close()
