"""JSON log lines: the run id on every line, secrets never in clear."""

from __future__ import annotations

import io
import json
import logging

import pytest

from etl.core.log import configure_logging, correlation
from etl.core.settings import get_settings


def test_secrets_are_masked_everywhere_in_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    settings = get_settings(
        gemini_api_key="account-AbCdEf123456", api_keys="key-one-1234,sha256:abcd",
        database_url="postgresql://etl:pg-pass-9876@db/crypto", _env_file=None,
    )  # fmt: skip
    configure_logging(settings)
    log = logging.getLogger("test.secrets")
    with correlation("run-42"):
        log.warning("calling with %s", "account-AbCdEf123456", extra={"header": "key-one-1234"})
        try:
            raise RuntimeError("could not connect with pg-pass-9876")
        except RuntimeError:
            log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    text = json.dumps(lines)
    for secret in ("account-AbCdEf123456", "key-one-1234", "pg-pass-9876"):
        assert secret not in text
    assert lines[0]["event"] == "calling with ***" and lines[0]["header"] == "***"
    assert "could not connect with ***" in lines[1]["exc_info"]
    assert all(line["run_id"] == "run-42" for line in lines)
    logging.getLogger().handlers = [logging.StreamHandler(io.StringIO())]
