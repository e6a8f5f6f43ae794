"""The README's Python examples run, and .env.example documents every variable the code reads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("contacts_cli", "persistence", "actors")


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "the README should carry a runnable actor example"
    for number, code in enumerate(blocks, 1):
        script = tmp_path / f"readme_block_{number}.py"
        script.write_text(code, encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert proc.returncode == 0, f"README python block {number} failed:\n{proc.stderr}"
        assert "recovered total: 6" in proc.stdout or number > 1


def test_env_example_lists_every_variable_the_code_reads() -> None:
    used: set[str] = set()
    for directory in CODE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            used |= set(re.findall(r"[\"'](CONTACTS_[A-Z_]+|DATABASE_URL)[\"']",
                                   path.read_text(encoding="utf-8")))
    assert "DATABASE_URL" in used and "CONTACTS_USER" in used
    documented = set(re.findall(r"^# ?([A-Z_]+)=", (ROOT / ".env.example").read_text(),
                                flags=re.MULTILINE))
    assert sorted(used - documented) == []
