"""Engine factory, migrations and the write lock, for SQLite and PostgreSQL.

Write transactions go through `write_transaction()`: on PostgreSQL it takes a
transaction-scoped advisory lock; on SQLite it opens the transaction with
`BEGIN IMMEDIATE`, which takes the database's write lock up front (two concurrent writers
queue on `busy_timeout` instead of deadlocking on a lock upgrade). Either way two runs at
once are serialised per load batch and cannot duplicate or corrupt data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from etl.core.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant for pg_advisory_xact_lock: "crypto-etl" load lock.
LOAD_LOCK_KEY = 0x63727970_746F
MIGRATION_LOCK_KEY = LOAD_LOCK_KEY + 1
# A second writer waits this long for the first to finish its file before giving up.
SQLITE_BUSY_TIMEOUT_MS = 300_000
SQLITE_MAX_READERS = 8  # SQLite's WAL has 8 read marks by default


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA temp_store = MEMORY")
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def create_db_engine(settings: Settings, **kwargs: Any) -> Engine:
    """Build the engine for `settings.database_url` with the per-dialect tuning."""
    url = make_url(settings.database_url)
    sqlite = url.get_backend_name() == "sqlite"
    on_disk = not sqlite or url.database not in (None, "", ":memory:")
    if on_disk:
        # A fixed pool (overflow connections were opened and closed per request under
        # load); SQLite at most SQLITE_MAX_READERS, since more readers contend for WAL read
        # marks. Measurements: docs/decisions.md.
        pool_size = (
            min(settings.db_pool_size, SQLITE_MAX_READERS) if sqlite else settings.db_pool_size
        )
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", 0)
    if sqlite:
        if on_disk:
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One atomic write transaction holding the load lock; commits on success."""
    if is_sqlite(engine):
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            yield conn
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOAD_LOCK_KEY})
        yield conn


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration (read from disk once: the scripts do not change at run time)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str | None:
    """Bring the schema to head (a no-op when already there); safe for concurrent callers:
    an advisory lock on PostgreSQL, a lock file beside the database on SQLite."""
    if current_revision(engine) == head_revision():
        return head_revision()
    if is_sqlite(engine):
        with FileLock(f"{engine.url.database or 'memory'}.migrate.lock"):
            _upgrade(engine)
    else:
        _upgrade(engine, lock_key=MIGRATION_LOCK_KEY)
    return current_revision(engine)


def _upgrade(engine: Engine, lock_key: int | None = None) -> None:
    with engine.begin() as conn:
        if lock_key is not None:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
