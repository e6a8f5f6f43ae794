"""Property: whatever text or bytes a reader is given, it yields rows or line-numbered
rejects, or raises the io layer's own error; never anything else (issue 10).

Bounded (200 examples each, no deadline) so the suite stays fast.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from contacts_cli.io import (
    ContactsIOError,
    ParsedRow,
    open_text,
    read_contacts,
    read_csv,
    read_json,
    read_jsonl,
    read_vcards,
)
from contacts_cli.io.formats import format_from_content
from contacts_cli.io.text import TextSource

READERS: dict[str, Callable[[TextSource], Iterator[ParsedRow]]] = {
    "csv": read_csv, "vcf": read_vcards, "jsonl": read_jsonl, "json": read_json,
    "sniffed": lambda stream: read_contacts(stream),
}
BOUNDED = settings(max_examples=200, deadline=None)

any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=400)
"""Any code point, lone surrogates and NUL included."""
structured_text = st.lists(
    st.sampled_from([
        "name,emails\n", "BEGIN:VCARD\n", "END:VCARD\n", "FN:A\n", "VERSION:3.0\n", '"', ",",
        "{", "}", "[", "]", ':', '"name"', "\r\n", "\r", "\n", "\ufeff", "\x00", "\ud800",
        "A", "é", "\\", "1e5", "null",
    ]),
    max_size=60,
).map("".join)
"""Text made of the pieces the readers react to, so the examples reach their branches."""


def check(read: Callable[[], Iterator[ParsedRow]]) -> None:
    try:
        rows = list(read())
    except ContactsIOError:
        return
    for row in rows:
        assert row.line >= 1
        assert row.ok or (row.data is None and row.errors)


@BOUNDED
@given(text=st.one_of(any_text, structured_text), reader=st.sampled_from(sorted(READERS)))
def test_any_text_gives_rows_rejects_or_an_io_error(text: str, reader: str) -> None:
    check(lambda: READERS[reader](io.StringIO(text)))


@BOUNDED
@given(
    data=st.one_of(st.binary(max_size=400), structured_text.map(lambda t: t.encode("utf-8",
                                                                                 "replace"))),
    format=st.sampled_from([None, "csv", "vcf", "jsonl", "json"]),
    encoding=st.sampled_from([None, "utf-8", "utf-16", "cp1252", "ascii"]),
)
def test_any_bytes_give_rows_rejects_or_an_io_error(
    data: bytes, format: str | None, encoding: str | None
) -> None:
    check(lambda: read_contacts(open_text(io.BytesIO(data), encoding), format))  # type: ignore[arg-type]


@BOUNDED
@given(text=any_text)
def test_format_sniffing_takes_any_text(text: str) -> None:
    assert format_from_content(text) in {"csv", "vcf", "jsonl", "json"}
