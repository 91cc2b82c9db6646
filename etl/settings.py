"""Settings for the data side, read from the environment and `.env`.

Nothing is read at import time: call `get_settings()` from an entry point. The variable
names of the original README keep working (`DATABASE_URL`, `COIN_IDS`, `KAGGLE_DATA_PATH`,
`POSTGRES_*`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL

DEFAULT_SQLITE_URL = "sqlite:///data/crypto.db"
DEFAULT_RAW_DIR = Path("data/raw")


def normalise_database_url(url: str) -> str:
    """Map the URL spellings users paste to the driver we ship (psycopg2 on Postgres)."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""
    postgres_host: str | None = None
    postgres_port: int = 5432
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_db: str = "crypto"
    db_pool_size: int = Field(default=10, ge=1, le=200)

    kaggle_data_path: Path = DEFAULT_RAW_DIR
    coin_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["bitcoin", "ethereum", "solana", "cardano"]
    )
    csv_chunk_rows: int = Field(default=100_000, ge=1_000)
    future_tolerance_seconds: int = Field(default=300, ge=0)

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("coin_ids", mode="before")
    @classmethod
    def _split_coin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _resolve_database_url(self) -> Settings:
        if not self.database_url:
            if self.postgres_host:
                self.database_url = URL.create(
                    "postgresql+psycopg2",
                    username=self.postgres_user,
                    password=self.postgres_password or None,
                    host=self.postgres_host,
                    port=self.postgres_port,
                    database=self.postgres_db,
                ).render_as_string(hide_password=False)
            else:
                self.database_url = DEFAULT_SQLITE_URL
        self.database_url = normalise_database_url(self.database_url)
        return self


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (CLI options, tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
