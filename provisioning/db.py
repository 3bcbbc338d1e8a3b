"""Schema migrations (Alembic, applied at start) and the API's transactions; engines
come from `credbroker.database`, which the standalone broker shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlmodel import Session

from credbroker.database import create_db_engine

__all__ = ["committed", "create_db_engine", "migrate", "transaction"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on any error."""
    bind = engine.execution_options(sqlite_begin="IMMEDIATE")
    with committed(Session(bind, expire_on_commit=False)) as session:
        yield session


@contextmanager
def committed(session: Session) -> Iterator[Session]:
    """`session`, committed when the block ends, rolled back if it raises, then closed."""
    with session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
