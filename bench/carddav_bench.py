"""CardDAV benchmark: vdirsyncer's first and incremental syncs, and single-card PUTs per second,
against this service and against Radicale (the reference), in one run.

Each server runs as its own process on 127.0.0.1: this service (``tests.carddav.server``: the
product's app with the tests' fixed-password authenticator, on a fresh schema of
``DATABASE_URL``/``TEST_DATABASE_URL``, dropped afterwards) and Radicale (``pip install -e
'.[bench]'``; a temporary folder, no authentication). Both are loaded with the same
``--contacts`` cards (this service through its import API, Radicale with one PUT of the whole
address book), then for each of ``--runs`` runs:

* first sync: ``vdirsyncer sync`` into an empty folder (wall time of the process);
* ``vdirsyncer sync`` with nothing changed: vdirsyncer's own floor (it lists every card and
  checks its status database and folder each time);
* incremental sync: 10 cards changed on the server, ``vdirsyncer sync`` again; and the same
  10 changes fetched by a sync-collection client (RFC 6578, tests/carddav/sync_client.py:
  one sync-collection REPORT and one multiget), which vdirsyncer does not use;
* PUTs: ``--puts`` new cards, one PUT each (``If-None-Match: *``), one keep-alive client;
* vdirsyncer's floor (this service only; ``--floor-repeats 0`` skips it): each of the three
  syncs recorded through a relay and replayed from a static responder
  (bench/carddav_floor.py), from the same client state, checked to leave the same cards, and
  alternated ``--floor-repeats`` times with the same sync against the service from that
  state; plus ``vdirsyncer --version``, the process start-up alone. What a sync takes
  beyond its floor is the server's;
  the relay also sums how long the server took to answer the recorded sync (its requests
  as a client sees them, with the cards already rendered by the real sync just before).

The cards a server renders stay remembered (contacts_cli/carddav/rendered.py), so the first
run's first sync is the cold one; later runs find them rendered, as a second device would.

    python -m bench.carddav_bench                       # 5,000 contacts, 3 runs
    python -m bench.carddav_bench --contacts 2000 --runs 5 --puts 300
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.carddav_floor import RecordReplay

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER, PASSWORD = "alice", "wonderland"


@dataclass
class Server:
    name: str
    base: str
    book: str
    change: Callable[[httpx.Client, int, int], None]


def card(n: int, run: int = 0, version: str = "3.0") -> str:
    return "".join(f"{line}\r\n" for line in [
        "BEGIN:VCARD", f"VERSION:{version}", f"UID:bench-{n}", f"FN:Person {n} r{run}",
        f"N:{n} r{run};Person;;;", f"EMAIL;TYPE=INTERNET:person{n}@example.org",
        f"TEL;TYPE=CELL:+1 202 555 {n % 10000:04d}", "ORG:Example Inc", "END:VCARD"])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1.0)
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def this_service(database_url: str, workdir: Path, contacts: int) -> Iterator[Server]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_")}
    env.update({"DATABASE_URL": database_url, "CONTACTS_DB_SCHEMA": schema,
                "CONTACTS_DATA_DIR": str(workdir), "CARDDAV_TEST_ACCOUNTS": f"{USER}:{PASSWORD}",
                "CONTACTS_SNAPSHOT_EVERY": "500"})
    log = workdir / "ours.log"
    process = subprocess.Popen([sys.executable, "-m", "tests.carddav.server", str(port)],
                               cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/healthz", process, log)
        rows = "".join(
            f'{{"name":"Person {n} r0","emails":["person{n}@example.org"],'
            f'"phones":["+1 202 555 {n % 10000:04d}"],"company":"Example Inc"}}\n'
            for n in range(contacts))
        answer = httpx.post(f"{base}/api/{USER}/contacts/import", content=rows, timeout=300,
                            headers={"Content-Type": "application/x-ndjson"})
        answer.raise_for_status()

        def change(http: httpx.Client, run: int, count: int) -> None:
            # Through REST with no credentials (the test server sets no token; its CardDAV
            # accounts are the tests' own, unknown to the REST API's Basic check).
            with httpx.Client(base_url=base, timeout=60) as rest:
                listed = rest.get(f"/api/{USER}/contacts", params={"limit": count})
                for item in listed.raise_for_status().json()["items"]:
                    rest.patch(f"/api/{USER}/contacts/{item['id']}",
                               json={"title": f"run {run}"}).raise_for_status()

        yield Server("this service", base, f"{base}/dav/{USER}/contacts/", change)
    finally:
        process.terminate()
        process.wait(timeout=60)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def radicale_server(workdir: Path, contacts: int) -> Iterator[Server]:
    port = free_port()
    log = workdir / "radicale.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
         "--storage-filesystem-folder", str(workdir / "radicale"), "--auth-type", "none",
         "--logging-level", "warning"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    book = f"{base}/{USER}/contacts/"
    try:
        wait_ready(base + "/.web/", process, log)
        with httpx.Client(auth=(USER, PASSWORD), timeout=600) as http:
            mkcol = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" '
                     'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
                     "<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set>"
                     "</D:mkcol>")
            http.request("MKCOL", book, content=mkcol).raise_for_status()
            whole = "".join(card(n) for n in range(contacts))
            http.put(book, content=whole, headers={"Content-Type": "text/vcard"}
                     ).raise_for_status()

        def change(http: httpx.Client, run: int, count: int) -> None:
            for n in range(count):
                http.put(f"{book}bench-{n}.vcf", content=card(n, run)).raise_for_status()

        yield Server("Radicale", base, book, change)
    finally:
        process.terminate()
        process.wait(timeout=60)


def vdirsyncer(home: Path, server: Server, config: str = "config") -> float:
    """Seconds ``vdirsyncer sync`` takes (the process's wall time)."""
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "vdirsyncer"), "-c", str(home / config), "sync"],
                          capture_output=True, text=True, timeout=1200, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"vdirsyncer failed on {server.name}: {done.stderr[-2000:]}")
    return elapsed


def configure(home: Path, server: Server) -> None:
    shutil.rmtree(home, ignore_errors=True)
    (home / "local").mkdir(parents=True)
    write_config(home, "config", server.book)
    subprocess.run([str(BIN / "vdirsyncer"), "-c", str(home / "config"), "discover"],
                   input="y\n", capture_output=True, text=True, timeout=120, check=True)


def write_config(home: Path, name: str, book: str) -> None:
    """vdirsyncer's configuration ``home/name``: the pair ``book`` between ``home/local``
    and the address book at ``book``, its status in ``home/status``."""
    (home / name).write_text(f"""
[general]
status_path = "{home}/status/"
[pair book]
a = "local"
b = "remote"
collections = null
[storage local]
type = "filesystem"
path = "{home}/local/"
fileext = ".vcf"
[storage remote]
type = "carddav"
url = "{book}"
username = "{USER}"
password = "{PASSWORD}"
""")


def puts(server: Server, run: int, count: int) -> float:
    """Single-card PUTs per second, one keep-alive client; the cards are deleted afterwards
    (not timed), so every run's first sync sees the same address book."""
    hrefs = [f"{server.book}put-{run}-{n}.vcf" for n in range(count)]
    with httpx.Client(auth=(USER, PASSWORD), timeout=60) as http:
        started = time.perf_counter()
        for n, href in enumerate(hrefs):
            answer = http.put(href, content=card(100_000 + n),
                              headers={"If-None-Match": "*", "Content-Type": "text/vcard"})
            answer.raise_for_status()
        rate = count / (time.perf_counter() - started)
        for href in hrefs:
            http.delete(href).raise_for_status()
    return rate


SYNCS = ("first", "noop", "inc")
"""The three vdirsyncer syncs of a run: first, with nothing changed, after 10 changes."""


class Floor:
    """vdirsyncer's floor (bench/carddav_floor.py): each sync replayed from the recorded
    answers of the server, from the client state the real sync started from, alternated
    ``repeats`` times with the same sync against the server from the same state.

    ``figures[kind][sync]`` collects, for each of :data:`SYNCS`: ``floor`` (replayed),
    ``real`` (against the server, alternated with the replays; the server has rendered the
    cards by then) and ``served`` (the server's answer times for the recorded sync, summed).
    """

    def __init__(self, replayer: RecordReplay, home: Path, server: Server, repeats: int,
                 figures: dict[str, dict[str, list[float]]]) -> None:
        self.replayer = replayer
        self.home = home
        self.server = server
        self.repeats = repeats
        self.figures = figures
        path = server.book.removeprefix(server.base)
        write_config(home, "config-floor", replayer.base + path)
        # vdirsyncer keeps a hash of its configuration beside the status; each config has its own
        self.collections = home / "status" / "book.collections"
        self.real = self.collections.read_text()
        subprocess.run([str(BIN / "vdirsyncer"), "-c", str(home / "config-floor"), "discover"],
                       input="y\n", capture_output=True, text=True, timeout=120, check=True)
        self.replayed = self.collections.read_text()
        self.collections.write_text(self.real)

    def snapshot(self) -> Path:
        """A copy of vdirsyncer's folder and status as they are now."""
        copy = self.home.with_name(self.home.name + "-before")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.home, copy)
        return copy

    def measure(self, what: str, before: Path) -> None:
        """Record the sync that just ran against the server (from ``before``), then time it
        replayed and real, alternately, each from ``before`` again (vdirsyncer only downloads
        in these syncs, so the server's state stays as it was). vdirsyncer's state ends as
        the real sync left it (checked after each replay: the same cards in its folder)."""
        expected = self._cards()
        self._restore(before, self.replayed)
        self.replayer.record()
        vdirsyncer(self.home, self.server, "config-floor")
        self.figures["served"][what].append(self.replayer.upstream_seconds)
        for _ in range(self.repeats):
            self._restore(before, self.real)
            self.figures["real"][what].append(vdirsyncer(self.home, self.server))
            self._restore(before, self.replayed)
            self.replayer.replay()
            self.figures["floor"][what].append(
                vdirsyncer(self.home, self.server, "config-floor"))
            if self.replayer.misses or not self.replayer.requests:
                raise RuntimeError(f"the replayed {what} sync sent requests never recorded: "
                                   f"{self.replayer.misses[:5]} "
                                   f"({self.replayer.requests} in all)")
            if self._cards() != expected:
                raise RuntimeError(f"the replayed {what} sync left other cards than the real")
        self.collections.write_text(self.real)

    def _cards(self) -> list[bytes]:
        # vdirsyncer names a file after a card's UID only if it is file-name safe (else a
        # random name), so the contents are compared, not the names
        return sorted(p.read_bytes() for p in (self.home / "local").iterdir())

    def _restore(self, before: Path, collections: str) -> None:
        shutil.rmtree(self.home)
        shutil.copytree(before, self.home)
        self.collections.write_text(collections)
        os.sync()  # the copy's writeback must not land in the timed sync


def start_up() -> list[float]:
    """Seconds ``vdirsyncer --version`` takes, five times (the process start-up: imports)."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([str(BIN / "vdirsyncer"), "--version"], capture_output=True, check=True,
                       timeout=120)
        times.append(time.perf_counter() - started)
    return times


def measure(server: Server, workdir: Path, contacts: int, runs: int, count: int,
            floor_repeats: int) -> None:
    from tests.carddav.sync_client import SyncClient

    figures: dict[str, list[float]] = {k: [] for k in ("first", "noop", "inc", "collection")}
    floor_figures: dict[str, dict[str, list[float]]] = {
        kind: {what: [] for what in SYNCS} for kind in ("floor", "real", "served")}
    rates: list[float] = []
    with contextlib.ExitStack() as stack:
        replayer = stack.enter_context(RecordReplay(server.base)) if floor_repeats else None
        home = workdir / f"vdir-{server.name.replace(' ', '-')}"
        floors: Floor | None = None
        for run in range(1, runs + 1):
            configure(home, server)
            floors = (Floor(replayer, home, server, floor_repeats, floor_figures)
                      if replayer else None)
            before = floors.snapshot() if floors else home
            figures["first"].append(vdirsyncer(home, server))
            synced = len(list((home / "local").glob("*.vcf")))
            assert synced >= contacts, f"{server.name}: {synced} cards synced, not {contacts}"
            if floors:
                floors.measure("first", before)
                before = floors.snapshot()
            figures["noop"].append(vdirsyncer(home, server))
            if floors:
                floors.measure("noop", before)
            with httpx.Client(base_url=server.base, auth=(USER, PASSWORD), timeout=60) as http:
                collection = SyncClient(http, server.book)
                collection.sync()
                before = floors.snapshot() if floors else home
                server.change(http, run, 10)
                figures["inc"].append(vdirsyncer(home, server))
                if floors:
                    floors.measure("inc", before)
                started = time.perf_counter()
                collection.sync()
                figures["collection"].append(time.perf_counter() - started)
                assert len(collection.last_changed) == 10, collection.last_changed
            rates.append(puts(server, run, count))
    median = {k: statistics.median(v) for k, v in figures.items()}
    print(f"{server.name}, {contacts} cards, {runs} runs (median [each run]):\n"
          f"  vdirsyncer first sync        {median['first']:.2f} s {fmt(figures['first'])}\n"
          f"  vdirsyncer sync, no change   {median['noop']:.2f} s {fmt(figures['noop'])}\n"
          f"  vdirsyncer sync, 10 changes  {median['inc']:.2f} s {fmt(figures['inc'])}\n"
          f"  sync-collection, 10 changes  {median['collection'] * 1000:.0f} ms "
          f"{fmt([v * 1000 for v in figures['collection']], '.0f')}\n"
          f"  single-card PUTs             {statistics.median(rates):.0f}/s "
          f"{fmt(rates, '.0f')}", flush=True)
    if replayer is not None:
        versions = start_up()
        print(f"  vdirsyncer floor: each sync replayed from this server's recorded answers by a "
              f"static responder, alternated {floor_repeats} times a run with the same sync "
              "against this service (cards already rendered); the server's answer times for "
              "the recorded sync, summed:")
        for what, label in (("first", "first sync"), ("noop", "sync, no change"),
                            ("inc", "sync, 10 changes")):
            floor, real, served = (floor_figures[k][what] for k in ("floor", "real", "served"))
            print(f"  vdirsyncer floor: {label:<17} {statistics.median(floor):.2f} s "
                  f"{fmt(floor)}\n"
                  f"    against this service, alternated {statistics.median(real):.2f} s "
                  f"{fmt(real)}; server answering it {statistics.median(served) * 1000:.0f} ms "
                  f"{fmt([v * 1000 for v in served], '.0f')}")
        print(f"  vdirsyncer floor: --version         {statistics.median(versions):.2f} s "
              f"{fmt(versions)} (process start-up)", flush=True)


def fmt(values: list[float], spec: str = ".2f") -> str:
    return "[" + ", ".join(format(v, spec) for v in values) + "]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--puts", type=int, default=500)
    parser.add_argument("--only", choices=["ours", "radicale"])
    parser.add_argument("--floor-repeats", type=int, default=3,
                        help="replays of each sync for vdirsyncer's floor, alternated with "
                             "the same sync against this service (0: no floor)")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not database_url:
        print("set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL for this service")
        return 2
    with tempfile.TemporaryDirectory(prefix="carddav-bench-") as tmp:
        workdir = Path(tmp)
        if args.only != "radicale":
            with this_service(database_url, workdir, args.contacts) as server:
                measure(server, workdir, args.contacts, args.runs, args.puts,
                        floor_repeats=args.floor_repeats)
        if args.only != "ours":
            try:
                import radicale  # noqa: F401
            except ImportError:
                print("Radicale is not installed: pip install -e '.[bench]'")
                return 1
            with radicale_server(workdir, args.contacts) as server:
                measure(server, workdir, args.contacts, args.runs, args.puts, floor_repeats=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
