"""Mutation testing of the modules that carry the guarantees (``make mutation``; issue 14).

For each module of ``mutation/modules.toml`` this runs cosmic-ray with the module's focused
tests: every mutant (one operator applied at one place) is written into the module, the tests
run, and a mutant the tests still pass with *survived*. A survivor is either a gap in the
tests (kill it with a new test) or equivalent to the original (list it in docs/testing.md,
"Mutation testing", with the reason).

cosmic-ray edits the files it mutates in place, so the run happens in a copy of the work
tree, ``.mutation/tree-<module>`` (tracked and untracked files, as they are now): an interrupted
run never leaves a mutant in the sources, the work tree stays usable meanwhile, and two runs
of different modules may go on at once. Tests run
with ``python -m pytest`` from the copy, which puts the copy first on ``sys.path`` (ahead of
the editable install). Results go to ``.mutation/<module>.sqlite`` (cosmic-ray's session;
``cr-report`` reads it) and ``.mutation/<module>.survivors.txt`` (the diff of each survivor).

``--survivors`` re-tests only the survivors of the kept sessions against the tests as they are
now (in a second copy, ``.mutation/recheck-<module>``), so a new test's effect shows in seconds; a
survivor listed under ``equivalent`` in ``mutation/modules.toml`` (with its reason in
docs/testing.md) is reported as such and does not fail the run.

Usage: ``python mutation/run.py [--resume | --survivors] [--list] [MODULE ...]`` (default:
every module).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
PYTEST = (
    "{python} -m pytest -x -q -p no:cacheprovider -p no:randomly -o addopts= --no-header "
    "--timeout={test_timeout} --timeout-method=thread {tests}"
)
"""A mutant that hangs a test (a fault the runtime never answers, a loop that never ends)
ends the whole run at once (``--timeout-method=thread`` exits the process): killed, without
waiting for a teardown that would hang as well."""
EXCLUDED_OPERATORS = [
    # Mutates every number by +1/-1: sizes, page lengths and timeouts, where the tests would
    # have to pin each constant; the comparison and binary operators cover the logic.
    "core/NumberReplacer",
    # Drops a decorator (@dataclass, @property, @staticmethod): caught at import time or by
    # mypy, not what these tests are for.
    "core/RemoveDecorator",
]


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The (start, end) positions of every annotation in ``source``, if it has
    ``from __future__ import annotations`` (else none: its annotations are evaluated)."""
    parsed = ast.parse(source)
    future = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in parsed.body
    )
    if not future:
        return []
    found: list[ast.expr] = []
    for node in ast.walk(parsed):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            found.append(node.returns)
    return [
        ((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0)) for a in found
    ]


def skip_annotations(session: Path, tree: Path) -> int:
    """Mark as skipped the mutants inside annotations of modules that never evaluate them
    (``from __future__ import annotations``): equivalent by construction."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.work_items):
            for mutation in item.mutations:
                path = str(mutation.module_path)
                if path not in spans:
                    spans[path] = annotation_spans((tree / path).read_text())
                start = tuple(mutation.start_pos)
                if any(lo <= start < hi for lo, hi in spans[path]):
                    db.set_result(
                        item.job_id,
                        WorkResult(
                            output="in an annotation that is never evaluated",
                            worker_outcome=WorkerOutcome.SKIPPED,
                        ),
                    )
                    skipped += 1
                    break
    return skipped


@dataclass(frozen=True)
class Module:
    name: str
    paths: list[str]
    tests: list[str]
    timeout: float
    test_timeout: float
    equivalent: frozenset[str]
    select: str | None


@dataclass(frozen=True)
class Score:
    total: int
    killed: int
    survived: int
    incompetent: int
    skipped: int

    @property
    def percent(self) -> float:
        judged = self.total - self.skipped
        return 100.0 * (self.killed + self.incompetent) / judged if judged else 100.0


def load_modules() -> list[Module]:
    with (ROOT / "mutation" / "modules.toml").open("rb") as handle:
        table = tomllib.load(handle)
    modules = []
    for name, entry in table.items():
        paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        modules.append(
            Module(
                name,
                paths,
                entry["tests"],
                float(entry.get("timeout", 120)),
                float(entry.get("test_timeout", 20)),
                frozenset(entry.get("equivalent", ())),
                entry.get("select"),
            )
        )
    return modules


def copy_tree(tree: Path) -> None:
    """Mirror the work tree's tracked and untracked (not ignored) files into ``tree``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    if tree.exists():
        shutil.rmtree(tree)
    for raw in listed:
        if not raw:
            continue
        relative = Path(os.fsdecode(raw))
        source = ROOT / relative
        if not source.is_file():
            continue
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def test_command(module: Module) -> str:
    command = PYTEST.format(
        python=sys.executable, tests=" ".join(module.tests), test_timeout=module.test_timeout
    )
    return f"{command} -k {shlex.quote(module.select)}" if module.select else command


def write_config(module: Module) -> Path:
    config = WORK / f"{module.name}.toml"
    command = test_command(module)
    lines = [
        "[cosmic-ray]",
        f"module-path = {json.dumps(module.paths)}",
        f"timeout = {module.timeout}",
        "excluded-modules = []",
        f"test-command = {json.dumps(command)}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
        "[cosmic-ray.filters.operators-filter]",
        f"exclude-operators = {json.dumps(EXCLUDED_OPERATORS)}",
        "",
    ]
    config.write_text("\n".join(lines))
    return config


def cosmic(tree: Path, *args: str | Path) -> None:
    bindir = Path(sys.executable).parent
    command = [str(bindir / str(args[0])), *map(str, args[1:])]
    subprocess.run(command, cwd=tree, check=True)


def results(session: Path) -> list[dict[str, object]]:
    dumped = subprocess.run(
        [str(Path(sys.executable).parent / "cosmic-ray"), "dump", str(session)],
        cwd=WORK,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in dumped.splitlines() if line.strip()]


def score(rows: list[dict[str, object]]) -> Score:
    killed = survived = incompetent = skipped = 0
    for _item, result in rows:  # type: ignore[misc]
        if result is None:
            continue
        if result["worker_outcome"] == "skipped":
            skipped += 1
        elif result["test_outcome"] == "survived":
            survived += 1
        elif result["test_outcome"] == "incompetent":
            incompetent += 1
        else:
            killed += 1
    return Score(len(rows), killed, survived, incompetent, skipped)  # the rest: not run yet


def mutant_id(mutation: dict[str, object]) -> str:
    """``path:line operator #occurrence``: how survivors are named in reports and in
    ``equivalent`` (the occurrence alone picks the mutant; the line is for the reader)."""
    return (
        f"{mutation['module_path']}:{mutation['start_pos'][0]} "  # type: ignore[index]
        f"{mutation['operator_name']} #{mutation['occurrence']}"
    )


def survivors(rows: list[dict[str, object]]) -> list[tuple[dict[str, object], str]]:
    """Each surviving mutation with its diff (cosmic-ray applies one mutation per item)."""
    found = []
    for item, result in rows:  # type: ignore[misc]
        if result is not None and result["test_outcome"] == "survived":
            for mutation in item["mutations"]:
                found.append((mutation, result.get("diff") or ""))
    return found


def is_equivalent(module: Module, mutation: dict[str, object]) -> bool:
    """Whether ``mutation`` is listed under ``equivalent`` (entries may use ``*`` wildcards,
    for a whole class of mutants that docs/testing.md explains once)."""
    name = mutant_id(mutation)
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in module.equivalent)


def survivors_report(found: list[tuple[dict[str, object], str]], module: Module) -> str:
    parts = []
    for mutation, diff in found:
        name = mutant_id(mutation)
        mark = " (equivalent)" if is_equivalent(module, mutation) else ""
        parts.append(f"### {name}{mark}\n{diff}\n")
    return "".join(parts)


def recheck(module: Module) -> list[tuple[dict[str, object], str]]:
    """Re-test the kept session's survivors with today's tests, in a fresh copy of the work
    tree; return those that still survive."""
    tree = WORK / f"recheck-{module.name}"
    copy_tree(tree)
    session = WORK / f"{module.name}.sqlite"
    if not session.exists():
        raise SystemExit(f"{module.name}: no session to recheck; run it first")
    skip_annotations(session, tree)
    still = []
    for mutation, diff in survivors(results(session)):
        if is_equivalent(module, mutation):
            still.append((mutation, diff))  # survives by construction: not re-run
            continue
        out = subprocess.run(
            [
                str(Path(sys.executable).parent / "cosmic-ray"),
                "mutate-and-test",
                str(mutation["module_path"]),
                str(mutation["operator_name"]),
                str(mutation["occurrence"]),
                test_command(module),
            ],
            cwd=tree,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        outcome = json.loads(out)["test_outcome"]
        print(f"  {mutant_id(mutation)}: {outcome}", flush=True)
        if outcome == "survived":
            still.append((mutation, diff))
    shutil.rmtree(tree)
    return still


def run(module: Module, resume: bool) -> Score:
    session = WORK / f"{module.name}.sqlite"
    config = write_config(module)
    tree = WORK / f"tree-{module.name}"
    copy_tree(tree)
    if not (resume and session.exists()):
        session.unlink(missing_ok=True)
        cosmic(tree, "cosmic-ray", "init", config, session)
        cosmic(tree, "cr-filter-operators", session, config)
        cosmic(tree, "cosmic-ray", "baseline", config)
    skipped = skip_annotations(session, tree)
    print(f"{module.name}: {skipped} mutants in annotations skipped", flush=True)
    started = time.monotonic()
    cosmic(tree, "cosmic-ray", "exec", config, session)
    shutil.rmtree(tree)
    rows = results(session)
    report = survivors_report(survivors(rows), module)
    (WORK / f"{module.name}.survivors.txt").write_text(report)
    result = score(rows)
    print(
        f"{module.name}: {result.killed + result.incompetent}/{result.total - result.skipped} "
        f"killed, {result.survived} survived ({result.percent:.0f} %), "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="names from mutation/modules.toml")
    parser.add_argument("--resume", action="store_true", help="continue the kept sessions")
    parser.add_argument(
        "--survivors", action="store_true", help="re-test the kept sessions' survivors only"
    )
    parser.add_argument("--list", action="store_true", help="print the module map and exit")
    args = parser.parse_args()
    modules = load_modules()
    if args.list:
        for module in modules:
            print(f"{module.name}: {' '.join(module.paths)} <- {' '.join(module.tests)}")
        return 0
    unknown = set(args.modules) - {m.name for m in modules}
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in modules if not args.modules or m.name in args.modules]
    WORK.mkdir(exist_ok=True)
    if args.survivors:
        after = {}
        for module in chosen:
            print(f"{module.name}: re-testing the survivors", flush=True)
            after[module.name] = recheck(module)
        return table(chosen, after)
    for module in chosen:
        run(module, args.resume)
    return table(chosen, None)


def table(
    chosen: list[Module], after: dict[str, list[tuple[dict[str, object], str]]] | None
) -> int:
    """Print the per-module scores (from the sessions, and after the recheck if there was
    one); return 1 if a survivor that is not listed as equivalent remains."""
    print(
        "\n| module | killed / mutants | survived | after the new tests | equivalent | not run |"
        "\n| --- | --- | --- | --- | --- | --- |"
    )
    failed = False
    for module in chosen:
        rows = results(WORK / f"{module.name}.sqlite")
        result = score(rows)
        remaining = after[module.name] if after is not None else survivors(rows)
        equivalent = [m for m, _ in remaining if is_equivalent(module, m)]
        failed = failed or len(remaining) > len(equivalent)
        first = result.killed + result.incompetent
        done = first + result.survived
        # a recheck saw the survivors of its start; mutants finished since count as they ended
        killed_after = done - len(remaining) if after is not None else first
        pending = result.total - result.skipped - done
        print(
            f"| {module.name} | {first} / {done} | {result.survived} "
            f"| {killed_after} / {done} | {len(equivalent)} | {pending} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
