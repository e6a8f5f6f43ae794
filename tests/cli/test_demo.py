"""``contacts demo`` runs the whole walkthrough against a real PostgreSQL and every check in it
passes (the demo verifies its own claims: same ids after a reset, a restart and a snapshot)."""

from __future__ import annotations

import asyncio
import re

from tests.cli.conftest import Env
from tests.conftest import drop_schemas, unique_schema


def test_demo_walks_through_every_step(cli_env: Env) -> None:
    schema = unique_schema("demo")
    try:
        result = cli_env.run("demo", mode=None, timeout=120,
                             extra_env={"CONTACTS_DEMO_SCHEMA": schema})
    finally:
        asyncio.run(drop_schemas(cli_env.database_url, [schema]))
    assert result.code == 0, result.stdout + result.stderr
    out = result.stdout
    for step in range(1, 9):
        assert f"== Step {step}:" in out
    assert "FAILED" not in out
    assert out.count("  OK ") == 3
    assert re.search(r"actor crashed: TypeError", out)
    assert re.search(r"faults \d+ -> \d+", out)
    assert re.search(r"alice: recovered from no snapshot, 4 events replayed", out)
    assert re.search(r"alice: recovered from snapshot at sequence_nr 11 \+ 1 events replayed",
                     out)
    assert "contacts-user/bob\t2\tContactCreated" in out
    assert f"CONTACTS_DB_SCHEMA={schema} contacts db journal alice" in out
    assert "title=Countess of Lovelace" in out
