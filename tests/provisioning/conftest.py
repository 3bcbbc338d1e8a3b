from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database
from tests.support import Api, make_api


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API on each supported database: the suite runs on both."""
    if request.param == "sqlite":
        yield make_api(tmp_path)
        return
    with postgres_database() as url:
        api = make_api(tmp_path, database_url=url)
        yield api
        api.engine.dispose()


@pytest.fixture
def fleet(api: Api) -> str:
    return str(api.fleet()["name"])
