"""The connection pool: fixed at DB_POOL_SIZE (SQLite: at most 8 readers), no overflow."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text

from etl.core.settings import get_settings
from etl.db.engine import SQLITE_MAX_READERS, create_db_engine


def test_the_pool_is_fixed_and_a_request_beyond_it_waits(database_url: str) -> None:
    settings = get_settings(database_url=database_url, db_pool_size=12, _env_file=None)
    engine = create_db_engine(settings, pool_timeout=0.2)
    size = SQLITE_MAX_READERS if database_url.startswith("sqlite") else 12
    held = [engine.connect() for _ in range(size)]
    try:
        assert [c.execute(text("SELECT 1")).scalar() for c in held] == [1] * size
        with pytest.raises(exc.TimeoutError):  # waits for a free connection, opens none
            engine.connect()
        held.pop().close()
        with engine.connect() as again:  # a returned connection serves the next request
            assert again.execute(text("SELECT 2")).scalar() == 2
    finally:
        for conn in held:
            conn.close()
        engine.dispose()
