"""A database that cannot answer is a 503 with the endpoint's own error format, never a
500: the token endpoint's statements run on the driver's cursor, whose errors are the
driver's own, not SQLAlchemy's (before: 500 "internal_error")."""

import sqlite3
from pathlib import Path

from tests.support import make_api


def test_a_locked_embedded_database_is_temporarily_unavailable(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    device = api.device(str(api.fleet()["name"]))
    device.tokens()
    holder = sqlite3.connect(tmp_path / "data" / "credbroker.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock too long
    try:
        response = api.token(device.grant_form())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert device.tokens()["access_token"]  # and it recovers once the lock is gone
