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


def _limits_table(markdown: str) -> list[list[str]]:
    """The rows of the README's Limits table, as cells."""
    section = markdown.split("### Limits", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def _constant(reference: str) -> object:
    """The value a reference such as ``pkg.module.NAME["key"]`` names."""
    import importlib

    match = re.fullmatch(r"([\w.]+)\.(\w+)(?:\[\"(\w+)\"\])?", reference)
    assert match, f"not a constant reference: {reference}"
    module, name, key = match.groups()
    value = getattr(importlib.import_module(module), name)
    return value[key] if key else value


def test_readme_limits_are_the_code_s() -> None:
    rows = _limits_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(rows) >= 20
    for what, value, _, where in rows:
        reference = re.search(r"`([^`]+)`", where)
        assert reference, f"the limit {what!r} names no constant"
        written = int(re.match(r"[\d,]+", value).group().replace(",", ""))  # type: ignore[union-attr]
        assert written == _constant(reference.group(1)), (what, value, reference.group(1))


def test_readme_exit_codes_are_the_code_s() -> None:
    from contacts_cli.cli import exits

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    defined = {value for name, value in vars(exits).items()
               if name.startswith("EXIT_") and isinstance(value, int)}
    assert documented == defined
