"""The data directory of a server process: made before anything is written to it."""

from __future__ import annotations

from pathlib import Path


def prepare(data_dir: Path) -> None:
    """Make the data directory (and its parents) if it is missing; it is made 0700, since
    it holds the master key, the admin key and, by default, the database."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
