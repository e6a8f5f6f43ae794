"""An argument that is not valid UTF-8 is a usage error naming the field (issue 10: it was a
traceback and exit 1). Python hands such bytes over as lone surrogates, which validation
refuses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import drop_schemas, unique_schema

pytestmark = pytest.mark.slow


def test_a_name_that_is_not_utf8_exits_2_naming_the_field(
    tmp_path: Path, database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONTACTS_URL"}
    schema = unique_schema("args")
    env.update(DATABASE_URL=database_url, CONTACTS_DATA_DIR=str(tmp_path), NO_COLOR="1",
               CONTACTS_DB_SCHEMA=schema)
    try:
        done = subprocess.run(
            [os.fsencode(sys.executable), b"-m", b"contacts_cli.cli.app", b"--local", b"add",
             b"Bad \xff", b"-u", b"args"],
            capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
        )
    finally:
        asyncio.run(drop_schemas(database_url, [schema]))
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2, stderr[-2000:]
    assert "name:" in stderr and "Traceback" not in stderr
