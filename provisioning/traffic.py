"""What the embedded broker's metrics tell the API process, read off the MQTT hot path.

In the embedded shape the broker's `BrokerStats` join the API's registry
(`broker.metrics`), so the API reads them from there: the sessions gauge when the
console asks (live sessions now), and the accepted-CONNECTs counter sampled by the
follower once a second (`provisioning.app`) into a ring of per-minute counts over the
last hour. The broker audits refused CONNECTs, never accepted ones (its hot path): this
ring is the only record of those. Without an embedded broker (the API alone, the
standalone and hook shapes) both answer None: another process's counters are in its
own `/metrics`, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from threading import Lock

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

SESSIONS = "credbroker_mqtt_sessions"
CONNECTS = "credbroker_mqtt_connects_total"
ACCEPTED = {"result": "accepted", "reason": "ok"}
MINUTES = 60


def _sample(metrics: Iterable[Metric], name: str, labels: dict[str, str]) -> float | None:
    for metric in metrics:
        for sample in metric.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


class Traffic:
    def __init__(self, registry: CollectorRegistry) -> None:
        # One collector each: collecting the whole registry would count the sessions
        # (the gauge's callback walks them) once a second for nothing.
        self._sessions = registry.restricted_registry([SESSIONS])
        self._connects = registry.restricted_registry([CONNECTS])
        self._lock = Lock()  # sampled by the follower's thread, read by the console's
        self._counted = 0.0  # the counter's value at the last sample
        self._minutes: dict[int, int] = {}  # minute (Unix time // 60) -> accepted

    def live_sessions(self) -> int | None:
        """The embedded broker's connected sessions; None: no embedded broker."""
        value = _sample(self._sessions.collect(), SESSIONS, {"state": "connected"})
        return None if value is None else int(value)

    def sample(self, now: float) -> None:
        """Add the CONNECTs accepted since the last sample to the minute of `now`."""
        value = _sample(self._connects.collect(), CONNECTS, ACCEPTED)
        if value is None:
            return
        minute = int(now // 60)
        with self._lock:
            added, self._counted = int(value - self._counted), value
            if added > 0:
                self._minutes[minute] = self._minutes.get(minute, 0) + added
            for old in [m for m in self._minutes if m <= minute - MINUTES]:
                del self._minutes[old]

    def accepted(self, *, since_minute: int) -> dict[int, int]:
        """Accepted CONNECTs per minute from `since_minute` on (minutes with none left out)."""
        with self._lock:
            return {m: n for m, n in self._minutes.items() if m >= since_minute}
