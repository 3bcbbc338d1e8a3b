"""The overview's reads of the audit log, on SQLite and PostgreSQL: per-minute counts
(the same minute on both, whatever a cast does with a fraction) and a revocation's first
cut."""

from __future__ import annotations

from provisioning.perminute import PerMinute
from provisioning.services import Services
from provisioning.store import audit
from tests.support import Api


def _services(api: Api) -> Services:
    return api.client.app.state.services  # type: ignore[attr-defined, no-any-return]


def _record(api: Api, at: float, action: str, outcome: str = "ok", **detail: object) -> None:
    with _services(api).transaction() as session:
        audit.record(
            session=session, now=at, action=action, outcome=outcome, device_id="d-1", **detail
        )


def test_events_are_counted_per_minute_by_reason_and_by_action(api: Api) -> None:
    base = 60 * 29_000_000  # a minute's first second
    for at, reason in ((base + 0.0, "expired"), (base + 59.9, "expired"), (base + 59.6, "bad")):
        _record(api, at, "mqtt.connect", "refused", reason=reason)
    _record(api, base + 60.4, "mqtt.connect", "refused")  # no reason: key ""
    _record(api, base - 0.5, "mqtt.connect", "refused", reason="expired")  # before `since`
    _record(api, base + 1, "token.issue")
    _record(api, base + 61, "token.refresh")
    _record(api, base + 62, "token.refresh")
    minute = base // 60
    with _services(api).transaction() as session:
        refused = audit.per_minute(
            session=session,
            since=base,
            actions=("mqtt.connect",),
            outcome="refused",
            by_reason=True,
        )
        grants = audit.per_minute(
            session=session, since=base, actions=("token.issue", "token.refresh"), outcome="ok"
        )
    assert sorted(refused) == [(minute, "bad", 1), (minute, "expired", 2), (minute + 1, "", 1)]
    assert sorted(grants) == [(minute, "token.issue", 1), (minute + 1, "token.refresh", 2)]


def test_the_first_event_after_a_time_within_a_bound(api: Api) -> None:
    _record(api, 1000.2, "mqtt.kick", reason="expired")
    _record(api, 1001.25, "mqtt.kick", reason="device_revoked")
    _record(api, 1002.0, "mqtt.kick", reason="revoked")
    with _services(api).transaction() as session:
        first = audit.first_after(
            session=session, action="mqtt.kick", device_id="d-1", since=1001, until=1061
        )
        none = audit.first_after(
            session=session, action="mqtt.kick", device_id="d-1", since=1003, until=1063
        )
    assert first == 1001.25
    assert none is None


def test_the_overview_without_a_broker_on_each_database(api: Api, fleet: str) -> None:
    device = api.device(fleet)
    device.tokens()
    revoked = api.client.post(f"/v1/devices/{device.id}:revoke", headers=api.admin)
    assert revoked.status_code == 200
    signed = api.client.post(
        "/console/sign-in", data={"key": api.admin_key}, headers={"Origin": "http://testserver"}
    )
    assert signed.status_code == 200  # followed the redirect to the overview
    page = signed.text
    assert 'Live MQTT sessions now: <span id="live-total">0</span>' in page
    assert "MQTT CONNECTs per minute: refused by reason" in page  # no accepted series
    assert "accepted (embedded broker)" not in page
    assert "no live session" in page and 'role="img"' in page


def test_settled_minutes_are_counted_once_and_the_recent_ones_every_time(api: Api) -> None:
    """`PerMinute`: the overview counts a minute from the audit log until it has
    settled, then from memory; what it answers is what the log holds, as time goes on."""
    first = 29_000_000  # a minute
    kept = PerMinute()

    def counts(now_minute: int) -> list[tuple[int, str, int]]:
        with _services(api).transaction() as session:
            return sorted(
                kept.counts(
                    session=session,
                    first_minute=first,
                    now=now_minute * 60 + 30,
                    actions=("token.issue",),
                    outcome="ok",
                )
            )

    _record(api, first * 60 + 1, "token.issue")
    _record(api, (first + 1) * 60 + 1, "token.issue")
    assert counts(first + 1) == [(first, "token.issue", 1), (first + 1, "token.issue", 1)]
    _record(api, (first + 1) * 60 + 2, "token.issue")  # the current minute goes on
    _record(api, (first + 3) * 60 + 1, "token.issue")
    assert counts(first + 3) == [
        (first, "token.issue", 1),
        (first + 1, "token.issue", 2),
        (first + 3, "token.issue", 1),
    ]
    _record(api, (first + 4) * 60, "token.issue")
    assert counts(first + 4)[-1] == (first + 4, "token.issue", 1)
    # An hour on, the first minutes are out of the window, from memory as from the log.
    later = kept.counts  # the same object: what it kept is dropped by the window
    with _services(api).transaction() as session:
        window = later(
            session=session,
            first_minute=first + 2,
            now=(first + 5) * 60,
            actions=("token.issue",),
            outcome="ok",
        )
    assert sorted(window) == [(first + 3, "token.issue", 1), (first + 4, "token.issue", 1)]
