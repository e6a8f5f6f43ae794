"""The search index of one user's contacts: a search is a lookup in C, not a scan in Python.

What a search term matches is defined by :func:`field_text` (the same text for the index and
for :func:`~contacts_cli.domain.queries.matches`, the per-contact reference): a term matches a
contact when it is a substring of that contact's folded text of a field (``""``: every text
field). The index keeps the contacts in name order in blocks of about :data:`BLOCK` contacts;
per block and per field, it keeps the contacts' texts joined into one string and where each
starts. Finding the next contact whose text holds a term is then ``str.find`` over a block's
text (C speed: 100,000 contacts are searched in milliseconds) plus a bisection to turn the
hit into a contact; only contacts that match cost Python work.

Invariants:

* the blocks hold every live contact once, in name order (:func:`sort_key`), none empty;
  ``_maxes[b]`` is the key of block ``b``'s last contact;
* a block's texts are either absent or those of its contacts: any change to a block drops
  them, and the next search that reaches the block joins them again (lazily, so writes stay
  O(log n) and a field nobody searches costs no memory);
* a hit counts only if it lies wholly inside one contact's text: the separator between two
  contacts' texts can be searched for, but never joins them.

The work is written as generators that ``yield`` after each block (a *step*): the caller
decides when to give the CPU away (the service yields to the event loop every few
milliseconds, see :mod:`contacts_cli.service.slices`); :func:`run_steps` just runs them.
Positions are only valid while the index is not changed, so a caller must not apply events
between the steps of one search (an actor handles one message at a time: it does not).
"""

from __future__ import annotations

import heapq
import unicodedata
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Generator, Iterable, Sequence
from typing import TypeVar

from contacts_cli.domain.model import Contact
from contacts_cli.domain.state import SortKey, sort_key
from contacts_cli.domain.validation import phone_digits

T = TypeVar("T")
Steps = Generator[None, None, T]
"""Work done a step at a time: each ``yield`` is a point where the caller may pause it."""

TEXT_FIELDS = ("name", "emails", "company", "title", "address", "birthday", "notes", "labels")
"""The fields the unqualified text ``""`` joins (phones are searched by their digits)."""
ALL = ""
PHONES = "phones"
BLOCK = 256
"""Contacts per block, about: a block's text is joined in a millisecond or so (one step),
and searched in microseconds."""
REBUILD_SHARE = 4
"""More writes than one contact in this many (plus a block) since the last search: the next
one builds a new index rather than catch up with each write."""
_SEP = "\x00"
_BETWEEN = "\x01"
_SORT_CHUNK = 2048


def fold(text: str) -> str:
    """What search compares: NFC, then case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


def field_text(contact: Contact, field: str) -> str:
    """The searchable text of one field (``""``: every text field), values joined by NUL so
    that no term matches across two values of a list without the NUL in it.

    Folding the joined text equals joining the folded values: NUL is a starter that composes
    with nothing, and case folding maps each character on its own."""
    if field == PHONES:
        return _SEP.join(map(phone_digits, contact.phones))
    if field == ALL:
        return fold(_SEP.join([_raw(contact, name) for name in TEXT_FIELDS]))
    return fold(_raw(contact, field))


def _raw(contact: Contact, name: str) -> str:
    value = getattr(contact, name)
    if isinstance(value, tuple):
        return _SEP.join(value)
    return value or ""


Position = tuple[int, int]
"""A contact's place in the index: (block, index in the block); ``(len(blocks), 0)``: the end."""
Alternatives = Sequence[tuple[str, str]]
"""One search term as ``(field, needle)`` pairs: it matches a contact if any pair does (an
unqualified phone-like term: in the text or in the phone digits); no pair: matches nothing."""


class _Block:
    __slots__ = ("contacts", "texts")

    def __init__(self, contacts: list[Contact]) -> None:
        self.contacts = contacts
        self.texts: dict[str, tuple[str, array[int]]] = {}

    def text(self, field: str) -> tuple[str, array[int]]:
        """The contacts' texts of ``field`` joined, and where each starts (one more entry:
        where a text after the last would start)."""
        built = self.texts.get(field)
        if built is None:
            parts = [field_text(c, field) for c in self.contacts]
            starts = array("L", [0])
            position = 0
            for part in parts:
                position += len(part) + 1
                starts.append(position)
            built = self.texts[field] = (_BETWEEN.join(parts), starts)
        return built


class SearchIndex:
    """The contacts of one user in name order, with the joined texts a search looks in."""

    __slots__ = ("_blocks", "_maxes", "_pending", "outdated")

    def __init__(self, ordered: Sequence[Contact] = ()) -> None:
        """An index of ``ordered``, which must already be in name order."""
        self._blocks = [_Block(list(ordered[i:i + BLOCK])) for i in range(0, len(ordered), BLOCK)]
        self._maxes = [sort_key(block.contacts[-1]) for block in self._blocks]
        self._pending: list[tuple[Contact | None, Contact | None]] = []
        self.outdated = False
        """Too many writes came in since the last search: build a new index instead."""

    @classmethod
    def build(cls, contacts: Iterable[Contact]) -> Steps[SearchIndex]:
        """Steps that index ``contacts`` (any order)."""
        return cls((yield from sorted_by_name(contacts)))

    def __iter__(self) -> Generator[Contact, None, None]:
        """The indexed contacts in name order (writes not yet caught up with excluded)."""
        for block in self._blocks:
            yield from block.contacts

    # -- writes: what the state calls as events apply ----------------------------------------
    def put(self, previous: Contact | None, contact: Contact) -> None:
        """``contact`` replaces ``previous`` (``None``: it is new). Only noted here (a write
        stays O(1)); the next search catches up with it, or builds a new index after more
        writes than :data:`REBUILD_SHARE` says."""
        self._note(previous, contact)

    def remove(self, contact: Contact) -> None:
        """Forget ``contact`` (the version the state held)."""
        self._note(contact, None)

    def _note(self, previous: Contact | None, contact: Contact | None) -> None:
        if self.outdated:
            return
        self._pending.append((previous, contact))
        if len(self._pending) > BLOCK + len(self._maxes) * BLOCK // REBUILD_SHARE:
            self.outdated = True
            self._pending.clear()

    def catch_up(self) -> Steps[None]:
        """Steps that apply the writes noted since the last search, :data:`BLOCK` a step."""
        pending, self._pending = self._pending, []
        for done, (previous, contact) in enumerate(pending, 1):
            if previous is not None and contact is not None:
                old, key = sort_key(previous), sort_key(contact)
                if old == key:
                    b, i = self._locate(old)
                    self._blocks[b].contacts[i] = contact
                    self._blocks[b].texts.clear()
                    continue
            if previous is not None:
                self._delete(previous)
            if contact is not None:
                self._insert(contact)
            if done % BLOCK == 0:
                yield

    def _insert(self, contact: Contact) -> None:
        key = sort_key(contact)
        if not self._blocks:
            self._blocks.append(_Block([contact]))
            self._maxes.append(key)
            return
        b = min(bisect_left(self._maxes, key), len(self._blocks) - 1)
        block = self._blocks[b]
        insort(block.contacts, contact, key=sort_key)
        block.texts.clear()
        self._maxes[b] = sort_key(block.contacts[-1])
        if len(block.contacts) > 2 * BLOCK:
            half = len(block.contacts) // 2
            tail = _Block(block.contacts[half:])
            del block.contacts[half:]
            self._blocks.insert(b + 1, tail)
            self._maxes[b] = sort_key(block.contacts[-1])
            self._maxes.insert(b + 1, sort_key(tail.contacts[-1]))

    def _delete(self, contact: Contact) -> None:
        b, i = self._locate(sort_key(contact))
        block = self._blocks[b]
        del block.contacts[i]
        block.texts.clear()
        if block.contacts:
            self._maxes[b] = sort_key(block.contacts[-1])
        else:
            del self._blocks[b]
            del self._maxes[b]

    def _locate(self, key: SortKey) -> tuple[int, int]:
        b = bisect_left(self._maxes, key)
        if b < len(self._blocks):
            contacts = self._blocks[b].contacts
            i = bisect_left(contacts, key, key=sort_key)
            if i < len(contacts) and contacts[i].id == key[1]:
                return b, i
        raise ValueError(f"contact {key[1]!r} is not in the search index")

    # -- search ------------------------------------------------------------------------------
    def search(
        self, terms: Sequence[Alternatives], after: SortKey | None, count: int
    ) -> Steps[list[Contact]]:
        """Steps to the first ``count`` contacts after ``after`` (name order) that every term
        matches, once the noted writes are caught up with.

        Terms are joined leapfrog-style: each one jumps to its next match from the current
        position, until they all agree on one contact. Each (term, field) remembers its last
        match, still valid while the position has not passed it, so the search reads each
        block's text at most once per (term, field) however the terms interleave."""
        if self.outdated:
            raise ValueError("an outdated search index must be built anew, not searched")
        yield from self.catch_up()
        position = self._after(after)
        memo: dict[tuple[int, int], Position | None] = {}
        found: list[Contact] = []
        while len(found) < count:
            matched = yield from self._next_all(terms, position, memo)
            if matched is None:
                break
            b, i = matched
            found.append(self._blocks[b].contacts[i])
            position = (b, i + 1) if i + 1 < len(self._blocks[b].contacts) else (b + 1, 0)
        return found

    def _after(self, key: SortKey | None) -> Position:
        if key is None:
            return 0, 0
        b = bisect_right(self._maxes, key)
        if b == len(self._blocks):
            return b, 0
        return b, bisect_right(self._blocks[b].contacts, key, key=sort_key)

    def _next_all(
        self,
        terms: Sequence[Alternatives],
        position: Position,
        memo: dict[tuple[int, int], Position | None],
    ) -> Steps[Position | None]:
        while True:
            moved = False
            for t, alternatives in enumerate(terms):
                best: Position | None = None
                for a, (field, needle) in enumerate(alternatives):
                    known = memo.get((t, a), position)
                    if known is not None and known < position:
                        known = position
                    if known == position:
                        known = memo[t, a] = yield from self._next_in(field, needle, position)
                    if known is not None and (best is None or known < best):
                        best = known
                if best is None:
                    return None
                if best != position:
                    position, moved = best, True
            if not moved:
                return position
            yield

    def _next_in(self, field: str, needle: str, position: Position) -> Steps[Position | None]:
        """The first contact at or after ``position`` whose ``field`` text holds ``needle``."""
        first, start = position
        width = len(needle)
        for b in range(first, len(self._blocks)):
            text, starts = self._blocks[b].text(field)
            offset = starts[start] if b == first else 0
            while (hit := text.find(needle, offset)) >= 0:
                i = bisect_right(starts, hit) - 1
                if hit + width < starts[i + 1]:
                    return b, i
                offset = hit + 1
            yield
        return None


def sorted_by_name(contacts: Iterable[Contact]) -> Steps[list[Contact]]:
    """Steps that sort ``contacts`` in name order: a chunk sorted per step, then merged (one
    ``sorted`` of 100,000 contacts would hold the CPU for some 100 ms)."""
    runs: list[list[Contact]] = []
    run: list[Contact] = []
    for contact in contacts:
        run.append(contact)
        if len(run) == _SORT_CHUNK:
            runs.append(sorted(run, key=sort_key))
            run = []
            yield
    runs.append(sorted(run, key=sort_key))
    ordered: list[Contact] = []
    for contact in heapq.merge(*runs, key=sort_key):
        ordered.append(contact)
        if len(ordered) % _SORT_CHUNK == 0:
            yield
    return ordered


def run_steps(steps: Steps[T]) -> T:
    """Run steps to the end without giving the CPU away (tests, scripts, small states)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
