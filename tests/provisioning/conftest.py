from pathlib import Path

import pytest

from tests.support import Api, make_api


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return make_api(tmp_path)


@pytest.fixture
def fleet(api: Api) -> str:
    return str(api.fleet()["name"])
