"""The data directory of a server process: made before anything is written to it, and
held by one process at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

import typer

LOCK_FILE = "credbroker.lock"
_held: list[IO[bytes]] = []  # open for the process's lifetime: the OS drops the lock at exit


def claim(data_dir: Path) -> None:
    """Make the data directory (and its parents) if it is missing, 0700 since it holds the
    master key, the admin key and by default the database; then lock it for this process.

    Two stacks on one SQLite file would each believe they own it (their revocations and
    penalties live in memory). The lock is an OS lock (flock): it dies with the process,
    so a crash leaves nothing to clean up."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    lock = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        typer.echo(
            f"error: the data directory {data_dir} is in use by another credbroker process "
            f"({path} is locked: {exc.strerror or exc}); stop it or choose another --data-dir",
            err=True,
        )
        raise typer.Exit(1) from exc
    _held.append(lock)
