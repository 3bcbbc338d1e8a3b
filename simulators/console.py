"""The simulator's live progress line and its final report, drawn with rich."""

from __future__ import annotations

from typing import Any

from rich.console import Console as RichConsole
from rich.live import Live
from rich.table import Table


class Console:
    """Progress on stderr while the run lasts (only on a terminal); the report on stdout."""

    def __init__(self) -> None:
        self.err = RichConsole(stderr=True)
        self.out = RichConsole()
        self._live: Live | None = None

    def progress(self, figures: dict[str, object]) -> None:
        if not self.err.is_terminal:
            return
        table = Table.grid(padding=(0, 2))
        table.add_row(*(f"[bold]{name}[/] {_fmt(value)}" for name, value in figures.items()))
        if self._live is None:
            self._live = Live(table, console=self.err, refresh_per_second=4, transient=True)
            self._live.start()
        else:
            self._live.update(table)

    def done(self) -> None:
        if self._live is not None:
            self._live.stop()

    def report(self, report: dict[str, Any]) -> None:
        verdict = "[green]OK[/]" if report["ok"] else "[red]FAILED[/]"
        summary = Table(title=f"credbroker simulate: {report['scenario']} {verdict}")
        summary.add_column("what")
        summary.add_column("figures")
        messages, latency, revocation = (
            report["messages"],
            report["latency_ms"],
            report["revocation"],
        )
        summary.add_row("devices", str(report["devices"]))
        summary.add_row("duration", f"{report['duration_s']} s")
        summary.add_row(
            "connects", f"{report['connects']['ok']} ok, refused {report['connects']['refused']}"
        )
        summary.add_row(
            "messages",
            f"{messages['sent']} sent, {messages['delivered']} delivered, "
            f"{messages['lost']} lost, {messages['duplicates']} duplicates",
        )
        summary.add_row(
            "commands",
            f"{messages['commands_sent']} sent, {messages['commands_delivered']} delivered",
        )
        summary.add_row("refreshes", f"{report['refreshes']} {report['refresh_spread']}")
        for name in ("token", "connect"):
            summary.add_row(f"{name} latency", _latency(latency[name]))
        if revocation["revoked"]:
            summary.add_row(
                "revocation",
                f"{revocation['revoked']} revoked, {revocation['disconnected']} cut "
                f"({_latency(revocation['latency_ms'])}), {revocation['stopped']} stopped",
            )
        if report["honest_devices_stopped"]:
            summary.add_row("honest devices stopped", str(report["honest_devices_stopped"]))
        self.out.print(summary)
        if report["attacks"]:
            attacks = Table(title="attacks")
            for column in ("attack", "expected", "tried", "stopped", "answers"):
                attacks.add_column(column)
            for name, attack in report["attacks"].items():
                style = "" if attack["stopped"] == attack["tried"] else "red"
                attacks.add_row(
                    name,
                    attack["expected"],
                    str(attack["tried"]),
                    str(attack["stopped"]),
                    str(attack["answers"]),
                    style=style,
                )
            self.out.print(attacks)


def _latency(figures: dict[str, Any]) -> str:
    return f"p50 {figures['p50']} ms, p99 {figures['p99']} ms (n={figures['n']})"


def _fmt(value: object) -> str:
    return f"{value:.0f}s" if isinstance(value, float) else str(value)
