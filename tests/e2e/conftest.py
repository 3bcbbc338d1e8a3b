from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    started = start_stack(tmp_path, seed_admin=False)
    yield started
    started.stop()
