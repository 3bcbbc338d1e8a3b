"""The embedded broker's counts as the API reads them (`provisioning.traffic`), and the
charts drawn from per-minute counts (`provisioning.console.charts`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from broker.metrics import BrokerStats
from provisioning.console.charts import Chart, Series
from provisioning.traffic import MINUTES, Traffic


def test_without_an_embedded_broker_there_is_nothing_to_count() -> None:
    traffic = Traffic(CollectorRegistry())
    traffic.sample(6000.0)
    assert traffic.live_sessions() is None
    assert traffic.accepted(since_minute=0) == {}


def test_accepted_connects_land_in_the_minute_they_were_sampled_and_age_out() -> None:
    registry = CollectorRegistry()
    traffic = Traffic(registry)
    stats = BrokerStats(registry)
    stats.sessions.labels("connected").set_function(lambda: 2)
    accepted = stats.connects.labels("accepted", "ok")
    accepted.inc(3)
    stats.connects.labels("refused", "expired").inc()  # not counted: audited instead
    traffic.sample(60 * 100 + 5)
    accepted.inc()
    traffic.sample(60 * 100 + 59)
    traffic.sample(60 * 101)  # nothing new
    accepted.inc(2)
    traffic.sample(60 * 102 + 1)
    assert traffic.live_sessions() == 2
    assert traffic.accepted(since_minute=0) == {100: 4, 102: 2}
    assert traffic.accepted(since_minute=101) == {102: 2}
    traffic.sample(60 * (100 + MINUTES))  # an hour on: minute 100 is gone
    assert traffic.accepted(since_minute=0) == {102: 2}


def test_a_chart_is_an_image_with_a_title_and_its_totals_and_escapes_its_text() -> None:
    counts = (0,) * 58 + (2, 1)
    chart = Chart("c", "CONNECTs <per minute>", 1000, (Series("refused: <x>", counts),))
    svg = str(chart.svg())
    assert 'role="img"' in svg and 'aria-labelledby="c-title c-desc"' in svg
    assert '<title id="c-title">CONNECTs &lt;per minute&gt;</title>' in svg
    assert "refused: &lt;x&gt; 3" in svg and "<x>" not in svg
    assert svg.count("<rect ") == 2
    assert [row[1] for row in chart.rows()] == [[2], [1]]
