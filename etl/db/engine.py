"""Engine factory, migrations and the write lock, for SQLite and PostgreSQL.

Write transactions go through `write_transaction()`: on PostgreSQL it takes a
transaction-scoped advisory lock; on SQLite it opens the transaction with
`BEGIN IMMEDIATE`, which takes the database's write lock up front (two concurrent writers
queue on `busy_timeout` instead of deadlocking on a lock upgrade). Either way two runs at
once are serialised per load batch and cannot duplicate or corrupt data.
"""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
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


# Alembic's bookkeeping table (its default name; env.py keeps the default).
VERSION_TABLE = "alembic_version"


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration: the one revision that no script names as its `down_revision`.

    Read from the scripts' literal assignments, without importing Alembic (0.1 s of
    start-up on a quiet machine, with its Mako and Pygments); anything this reading cannot
    settle (no single head, a revision that is not a literal) is left to Alembic's own
    `ScriptDirectory`. A test holds the two readings equal."""
    head = declared_head(MIGRATIONS_DIR / "versions")
    if head is UNSETTLED:
        from etl.db.upgrade import script_head  # Alembic: only when this reading cannot say

        return script_head()
    return head


class _Unsettled(Enum):
    UNSETTLED = "unsettled"


UNSETTLED = _Unsettled.UNSETTLED


def declared_head(versions: Path) -> str | Literal[_Unsettled.UNSETTLED]:
    """The one revision of the scripts in `versions` that no script names as its parent,
    from their literal `revision` and `down_revision`; `UNSETTLED` when that is not one
    revision or a value is not a literal."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        if script.name == "__init__.py":
            continue
        declared = _declared(script)
        revision, down = declared.get("revision"), declared.get("down_revision", UNSETTLED)
        if not isinstance(revision, str):
            return UNSETTLED
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple) and all(isinstance(p, str) for p in down):  # a merge
            parents.update(down)
        elif down is not None:
            return UNSETTLED
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else UNSETTLED


def _declared(script: Path) -> dict[str, object]:
    """A migration script's module-level assignments whose values are literals."""
    found: dict[str, object] = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        try:
            value = ast.literal_eval(node.value) if node.value is not None else UNSETTLED
        except ValueError:
            value = UNSETTLED
        found.update(dict.fromkeys(names, value))
    return found


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration), read the way
    Alembic's `MigrationContext.get_current_revision` reads it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise RuntimeError(f"{VERSION_TABLE} holds more than one head: {sorted(versions)}")
    return versions[0] if versions else None


def migrate(engine: Engine) -> str | None:
    """Bring the schema to head (a no-op when already there); safe for concurrent callers:
    an advisory lock on PostgreSQL, a lock file beside the database on SQLite."""
    if current_revision(engine) == head_revision():
        return head_revision()
    # Alembic and the lock file's library: loaded only when the schema must change.
    from filelock import FileLock

    from etl.db.upgrade import upgrade

    if is_sqlite(engine):
        with FileLock(f"{engine.url.database or 'memory'}.migrate.lock"):
            upgrade(engine)
    else:
        upgrade(engine, lock_key=MIGRATION_LOCK_KEY)
    return current_revision(engine)
