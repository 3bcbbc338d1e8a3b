from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import Browsed, page_of
from tests.stack import Stack, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    started = start_stack(tmp_path, seed_admin=False)
    yield started
    started.stop()


@pytest.fixture
def browsed(stack: Stack) -> Iterator[Browsed]:
    """A browser page on the module's stack; every page it opened needed our origin only."""
    with page_of(stack.base) as browsed:
        yield browsed
        assert browsed.foreign == []
