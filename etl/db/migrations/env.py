"""Alembic environment: runs on the connection handed over by `etl.db.engine.migrate`, or on
`sqlalchemy.url` (from alembic.ini / DATABASE_URL) when called as `alembic upgrade head`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from etl.core.settings import get_settings
from etl.db.engine import create_db_engine
from etl.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or ""
    settings = get_settings(database_url=url) if url else get_settings()
    engine = create_db_engine(settings)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
