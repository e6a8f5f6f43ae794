"""vdirsyncer and khard against the running service: the first sync, an edit on each side, a
delete on each side, a conflict; khard reads what `contacts ls` shows; a Google CSV import
synced out, edited with khard, synced back, and seen in `contacts history`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.carddav.clients import ContactsCli, Khard, Vdirsyncer
from tests.carddav.conftest import DavServer
from tests.io.test_csv_import import GOOGLE

pytestmark = pytest.mark.slow

LOCAL_CARD = """BEGIN:VCARD\r
VERSION:3.0\r
UID:local-card-1\r
FN:Katherine Johnson\r
N:Johnson;Katherine;;;\r
EMAIL;TYPE=INTERNET,WORK:kj@nasa.example.org\r
TEL;TYPE=CELL:+1 202 555 0177\r
TEL;TYPE=WORK:ext 42\r
ADR;TYPE=WORK:;;NASA Langley;Hampton;VA;23681;USA\r
ADR;TYPE=HOME:;;1 Home Rd;Hampton;VA;;USA\r
PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\r
 +M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r
X-MANAGER:Dorothy Vaughan\r
NOTE:Computed trajectories\\, by hand.\r
END:VCARD\r
"""


def properties(card: str) -> list[str]:
    """A card's content lines, unfolded, without REV (which a server writes anew)."""
    unfolded = card.replace("\r\n ", "").replace("\n ", "")
    return sorted(line.rstrip("\r") for line in unfolded.splitlines()
                  if line.strip() and not line.startswith("REV:"))


def test_sync_both_ways_edits_deletes_and_a_conflict(dav_server: DavServer,
                                                     tmp_path: Path) -> None:
    cli = ContactsCli(dav_server)
    for name, email in [("Ada Lovelace", "ada@example.org"), ("Grace Hopper", "grace@example.org"),
                        ("Alan Turing", "alan@example.org")]:
        cli("add", "--name", name, "--email", email)
    vdir = Vdirsyncer(dav_server, tmp_path / "vdir")
    vdir.configure()
    vdir("discover")
    vdir.sync()
    assert len(vdir.cards()) == 3
    khard = Khard(vdir.folder, tmp_path)
    khard.configure()
    assert khard.names() == cli.names()

    # A card made locally (PHOTO, two addresses, typed TEL and EMAIL, an X- property, a TEL
    # that is no phone number) goes up and comes back as it was.
    (vdir.folder / "local-card-1.vcf").write_text(LOCAL_CARD)
    vdir.sync()
    katherine = cli.by_name()["Katherine Johnson"]
    assert katherine["id"] == "local-card-1" and katherine["phones"] == ["+12025550177"]
    fresh = Vdirsyncer(dav_server, tmp_path / "fresh")
    fresh.configure()
    fresh("discover")
    fresh.sync()
    assert properties(fresh.file_of("Katherine Johnson").read_text()) == properties(LOCAL_CARD)

    # An edit on each side.
    ada_id = cli.by_name()["Ada Lovelace"]["id"]
    ada_file = vdir.file_of("Ada Lovelace")
    ada_file.write_text(ada_file.read_text().replace("END:VCARD", "TITLE:Countess\r\nEND:VCARD"))
    cli("edit", cli.by_name()["Grace Hopper"]["id"], "--title", "Rear Admiral")
    vdir.sync()
    assert cli.by_name()["Ada Lovelace"]["title"] == "Countess"
    grace_id = cli.by_name()["Grace Hopper"]["id"]
    assert "TITLE:Rear Admiral" in vdir.file_of("Grace Hopper").read_text()
    history = cli.json("history", ada_id)
    assert [h["type"] for h in history] == ["ContactCreated", "ContactUpdated"]

    # A delete on each side.
    alan_id = cli.by_name()["Alan Turing"]["id"]
    vdir.file_of("Alan Turing").unlink()
    cli("rm", grace_id, "--yes")
    vdir.sync()
    assert cli.names() == ["Ada Lovelace", "Katherine Johnson"]
    assert sorted(vdir.cards()) == sorted([ada_file.name, "local-card-1.vcf"])
    assert cli.json("history", alan_id)[-1]["type"] == "ContactRemoved"
    assert khard.names() == cli.names()

    # A conflict: both sides change the same card. vdirsyncer refuses to guess...
    ada_file.write_text(ada_file.read_text().replace("TITLE:Countess", "TITLE:Mathematician"))
    cli("edit", ada_id, "--title", "Analyst")
    refused = vdir.sync(check=False)
    assert refused.returncode != 0 and "conflict" in (refused.stdout + refused.stderr).lower()
    # ... and with "a wins" the local edit goes up, through If-Match on the server's ETag.
    vdir.conflict_resolution = "a wins"
    vdir.configure()
    vdir.sync()
    assert cli.by_name()["Ada Lovelace"]["title"] == "Mathematician"
    assert [h["type"] for h in cli.json("history", ada_id)][-1] == "ContactUpdated"


def test_google_csv_import_synced_out_edited_with_khard_and_synced_back(
        dav_server: DavServer, tmp_path: Path) -> None:
    cli = ContactsCli(dav_server)
    csv_file = tmp_path / "google.csv"
    csv_file.write_text(GOOGLE)
    cli("import", str(csv_file))
    imported = cli.by_name()
    assert sorted(imported) == ["Ada Lovelace", "Grace Hopper", "Navy"]
    # vCard 4.0 on the wire: khard writes a yearless birthday back as 1900-12-09 in 3.0.
    vdir = Vdirsyncer(dav_server, tmp_path / "vdir", vcard_4=True)
    vdir.configure()
    vdir("discover")
    vdir.sync()
    assert all("VERSION:4.0" in card for card in vdir.cards().values())
    khard = Khard(vdir.folder, tmp_path)
    khard.configure()
    assert khard.names() == cli.names()
    shown = khard("show", "--format", "yaml", "Grace Hopper")
    assert "grace@navy.mil" in shown, shown
    edited = tmp_path / "grace.yaml"
    edited.write_text("\n".join(
        "Organisation: US Navy" if line.startswith("Organisation") else line
        for line in shown.splitlines()))
    khard("edit", "--input-file", str(edited), "Grace Hopper", stdin="yes\n")
    vdir.sync()
    grace = cli.by_name()["Grace Hopper"]
    assert grace["company"] == "US Navy" and grace["emails"] == ["grace@navy.mil"]
    assert grace["birthday"] == "--12-09"
    history = cli.json("history", grace["id"])
    assert [h["type"] for h in history] == ["ContactCreated", "ContactUpdated"]
    assert history[-1]["changes"]["company"] == "US Navy"
