from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A 1 s leeway keeps expiry tests short; everything else is the default stack.
    started = start_stack(Path(tmp_path_factory.mktemp("stack")), CREDBROKER_LEEWAY="1")
    yield started
    started.stop()
