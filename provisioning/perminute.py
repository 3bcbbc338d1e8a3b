"""Per-minute audit counts for the console overview, each settled minute counted once.

A busy fleet writes thousands of audit events a minute (every grant and refresh is
one), so counting the whole last hour on every render would grow with the traffic. A
minute that ended `SETTLED` minutes ago no longer changes (events are written by the
request or the broker batch that makes them, within a second or two), so its counts are
kept in the process and a render counts only the minutes since. Each API process keeps
its own; a process that starts counts the hour once.
"""

from __future__ import annotations

from threading import Lock

from sqlmodel import Session

from provisioning.store import audit

SETTLED = 2  # minutes after its end that a minute's count is final

Query = tuple[tuple[str, ...], str, bool]  # actions, outcome, by reason
Row = tuple[int, str, int]  # minute, key, count


class PerMinute:
    def __init__(self) -> None:
        self._lock = Lock()  # routes run on a thread pool
        self._kept: dict[Query, tuple[int, list[Row]]] = {}  # counted before minute, rows

    def counts(
        self,
        *,
        session: Session,
        first_minute: int,
        now: int,
        actions: tuple[str, ...],
        outcome: str,
        by_reason: bool = False,
    ) -> list[Row]:
        """`audit.per_minute` from `first_minute` on, the settled minutes from memory."""
        query = (actions, outcome, by_reason)
        minute = now // 60
        with self._lock:
            counted_before, kept = self._kept.get(query, (first_minute, []))
        if counted_before > minute:  # the clock went back: count again
            counted_before, kept = first_minute, []
        start = max(counted_before, first_minute)
        kept = [row for row in kept if row[0] >= first_minute]
        fresh = audit.per_minute(
            session=session, since=start * 60, actions=actions, outcome=outcome, by_reason=by_reason
        )
        settled = minute - SETTLED
        if settled > start:
            with self._lock:
                self._kept[query] = (settled, kept + [row for row in fresh if row[0] < settled])
        return kept + fresh
