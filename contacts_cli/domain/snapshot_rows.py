"""Contacts restored from a snapshot and built on first use, not all at restart.

Restoring 100,000 contacts from a binary snapshot takes ~15 ms to decode their columns, but
several times that to build the 100,000 :class:`Contact` objects, the larger part of a large
user's restart; and a restart's first commands (a count, one contact, a new contact) need
none of them. :class:`SnapshotRows` holds a snapshot's contacts as the set of their ids
and a loader of their columns (decoded on first need): :class:`~contacts_cli.domain.state.
ContactsState` asks it for one contact at a time, for the name order (from the name
column alone, so a first page builds only its own contacts), and for all of them the first
time anything iterates the contacts or builds another index, after which the state holds
plain contacts again and drops the rows.

Invariants (the state relies on them):

* ``alive`` holds exactly the ids of the snapshot's contacts still alive (``ids`` all of
  them, in the snapshot's order); ``built`` the contacts of a subset of ``alive``: those
  built so far, or replaced since the restore;
* a contact comes back equal to the one that was snapshotted: :func:`build_contacts` builds
  it from columns whose values already have the fields' types (the snapshot's decoder
  checked them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress
from typing import Any

from contacts_cli.domain.model import Contact

COLUMNS: tuple[str, ...] = (
    "id", "name", "emails", "phones", "company", "title", "address", "birthday", "notes",
    "labels", "created_at", "updated_at", "version", "card",
)
"""The contact columns of a snapshot, in :class:`Contact` field order (the JSON snapshots
of schema 2 lack ``card``: they predate stored vCards)."""

Columns = Sequence[list[Any]]
"""A snapshot's contacts as :data:`COLUMNS`, each value already of its field's type."""


def build_contacts(columns: Columns) -> list[Contact]:
    """The contacts of ``columns``, one row each. :class:`Contact` is a ``msgspec.Struct``
    (building one is a fraction of a microsecond, with no Python-level ``__init__``), so
    ``map`` over the columns is the whole of it. Columns of unequal length raise
    ``ValueError``."""
    if len(columns) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, got {len(columns)}")
    count = len(columns[0])
    for name, values in zip(COLUMNS, columns, strict=True):
        if len(values) != count:
            raise ValueError(f"column {name!r} does not have {count} values")
    return list(map(Contact, *columns))


class SnapshotRows:
    """A snapshot's contacts not built yet (see the module docstring).

    ``decode()`` gives the contacts' :data:`COLUMNS`; it is called once, at the first contact
    needed, and may raise (a damaged snapshot fails the command that first reads it). Until
    then the rows cost a set of their ids: the row of an id is looked up only with the
    columns, so a restart does not pay for that index either.
    """

    __slots__ = ("_columns", "_decode", "_rows", "alive", "built", "ids")

    def __init__(self, ids: list[str], decode: Callable[[], Columns]) -> None:
        alive = set(ids)
        if len(alive) != len(ids):
            raise ValueError("a contact id appears twice in the snapshot")
        self.ids = ids
        """Every id of the snapshot, in its order (row ``i`` holds ``ids[i]``)."""
        self.alive = alive
        """The ids of the snapshot's contacts not removed since the restore."""
        self.built: dict[str, Contact] = {}
        """Contacts of ``alive`` built so far, or replaced since the restore."""
        self._columns: Columns | None = None
        self._rows: dict[str, int] | None = None
        self._decode = decode

    def __len__(self) -> int:
        return len(self.alive)

    def get(self, contact_id: str) -> Contact | None:
        """The contact with this id if it is one of the rows, built now if need be."""
        contact = self.built.get(contact_id)
        if contact is None:
            if contact_id not in self.alive:
                return None
            columns = self._decoded()
            assert self._rows is not None
            row = self._rows[contact_id]
            contact = Contact(*(values[row] for values in columns))
            self.built[contact_id] = contact
        return contact

    def replace(self, contact: Contact) -> bool:
        """Keep ``contact`` in place of the row with its id (it keeps the row's position);
        False if no row has that id."""
        if contact.id not in self.alive:
            return False
        self.built[contact.id] = contact
        return True

    def pop(self, contact_id: str) -> Contact | None:
        """Remove the row with this id; the contact it held, or None if no row has it."""
        contact = self.get(contact_id)
        if contact is not None:
            self.alive.remove(contact_id)
            del self.built[contact_id]
        return contact

    def all(self) -> dict[str, Contact]:
        """Every contact of the rows, ``id -> contact`` in the snapshot's order."""
        columns = self._decoded()
        ids = self.ids
        if len(self.alive) != len(ids):  # some were removed since the restore
            rows = list(compress(range(len(ids)), map(self.alive.__contains__, ids)))
            columns = [list(map(values.__getitem__, rows)) for values in columns]
        contacts = dict(zip(columns[0], build_contacts(columns), strict=True))
        contacts.update(self.built)  # existing keys: each keeps its row's position
        return contacts

    def sort_keys(self) -> dict[str, tuple[str, str]]:
        """Each row's place in the name order, ``id -> (casefolded name, id)``, from the
        name column: no contact is built for it."""
        columns = self._decoded()
        ids = self.ids
        keys = dict(zip(ids, zip(map(str.casefold, columns[1]), ids, strict=True), strict=True))
        if len(self.alive) != len(ids):
            for removed in set(ids) - self.alive:
                del keys[removed]
        for contact in self.built.values():
            keys[contact.id] = (contact.name.casefold(), contact.id)
        return keys

    def _decoded(self) -> Columns:
        columns = self._columns
        if columns is None:
            columns = self._decode()
            if len(columns) != len(COLUMNS) or any(
                len(values) != len(self.ids) for values in columns
            ):
                raise ValueError("the snapshot's columns do not have one value per contact")
            self._rows = dict(zip(self.ids, range(len(self.ids)), strict=True))
            self._columns = columns
        return columns
