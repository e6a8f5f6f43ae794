"""Real clients driven as a user would: vdirsyncer (sync an address book to a folder and
back), khard (read and edit that folder) and the contacts CLI against the running service.

Each runs as a subprocess of the test's virtual environment with its own configuration in a
temporary directory; every run has a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.carddav.conftest import USERS, DavServer

BIN = Path(sys.executable).parent
TIMEOUT = 120


def run(args: list[str], *, env: dict[str, str] | None = None, stdin: str = "",
        check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env,
                          timeout=TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@dataclass
class Vdirsyncer:
    """A vdirsyncer pair: the server's address book (discovered from its root URL) and a
    local folder, ``folder`` holding one .vcf per card."""

    server: DavServer
    home: Path
    conflict_resolution: str | None = None
    vcard_4: bool = False

    @property
    def folder(self) -> Path:
        return self.home / "local" / "contacts"

    def configure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        resolution = (f'conflict_resolution = "{self.conflict_resolution}"'
                      if self.conflict_resolution else "")
        (self.home / "config").write_text(f"""
[general]
status_path = "{self.home}/status/"

[pair book]
a = "local"
b = "remote"
collections = ["from b"]
{resolution}

[storage local]
type = "filesystem"
path = "{self.home}/local/"
fileext = ".vcf"

[storage remote]
type = "carddav"
url = "{self.server.url}/"
username = "alice"
password = "{USERS['alice']}"
use_vcard_4 = {"true" if self.vcard_4 else "false"}
""")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(BIN / "vdirsyncer"), "-c", str(self.home / "config"), *args],
                   stdin="y\n" * 4, check=check)

    def sync(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("sync", check=check)

    def cards(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.folder.glob("*.vcf"))}

    def file_of(self, name: str) -> Path:
        """The local file of the card named ``name`` (vdirsyncer names files by UID)."""
        found = [p for p in self.folder.glob("*.vcf")
                 if f"FN:{name}" in (line.rstrip("\r") for line in p.read_text().splitlines())]
        assert len(found) == 1, (name, sorted(self.cards()))
        return found[0]


@dataclass
class Khard:
    """khard on the folder vdirsyncer writes."""

    folder: Path
    home: Path

    def configure(self) -> None:
        (self.home / "khard.conf").write_text(f"""
[addressbooks]
[[contacts]]
path = {self.folder}

[general]
debug = no
default_action = list
editor = /bin/false
merge_editor = /bin/false

[contact table]
display = formatted_name
sort = formatted_name

[vcard]
preferred_version = 3.0
""")

    def __call__(self, *args: str, stdin: str = "") -> str:
        return run([str(BIN / "khard"), "-c", str(self.home / "khard.conf"), *args],
                   stdin=stdin).stdout

    def names(self) -> list[str]:
        """The names khard lists (its parsable output: uid, name, address book)."""
        lines = self("list", "--parsable").splitlines()
        return sorted(line.split("\t")[1] for line in lines if line.strip())


@dataclass
class ContactsCli:
    """``contacts --server URL --user alice ...`` (client mode, as a user at a terminal)."""

    server: DavServer

    def __call__(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_")}
        return run([str(BIN / "contacts"), "--server", self.server.url, *args,
                    "--user", "alice"], env=env).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))

    def names(self) -> list[str]:
        return sorted(c["name"] for c in self.json("ls", "--all"))

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.json("ls", "--all")}
