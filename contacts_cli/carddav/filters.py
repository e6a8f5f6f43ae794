"""The ``CARDDAV:filter`` of an addressbook-query (RFC 6352 10.5), parsed and evaluated.

A filter is evaluated against the card as the client would receive it (the rendered vCard),
so it matches what the client sees: FN, N, EMAIL, TEL, ORG, NICKNAME, ADR, NOTE, UID,
CATEGORIES, X- properties alike, and their parameters (``TYPE=work``). Collations:
``i;unicode-casemap`` (the default: case-insensitive for any script), ``i;ascii-casemap``
and ``i;octet``; another is refused with ``CARDDAV:supported-collation``.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

from vobject.base import ParseError, parseLine
from vobject.vcard import stringToTextValues

from contacts_cli.carddav.davxml import CARDDAV, DavError, q
from contacts_cli.carddav.vcard_versions import property_name

_MATCH_TYPES = ("equals", "contains", "starts-with", "ends-with")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_COLLATIONS: dict[str, Callable[[str], str]] = {
    "i;unicode-casemap": lambda s: unicodedata.normalize("NFKC", s).casefold(),
    "i;ascii-casemap": lambda s: s.translate(_ASCII_LOWER),
    "i;octet": lambda s: s,
}


@dataclass(frozen=True, slots=True)
class TextMatch:
    text: str
    match_type: str = "contains"
    collation: str = "i;unicode-casemap"
    negate: bool = False

    def matches(self, value: str) -> bool:
        fold = _COLLATIONS[self.collation]
        have, want = fold(value), fold(self.text)
        hit = {
            "equals": have == want,
            "contains": want in have,
            "starts-with": have.startswith(want),
            "ends-with": have.endswith(want),
        }[self.match_type]
        return hit != self.negate


@dataclass(frozen=True, slots=True)
class ParamFilter:
    name: str
    undefined: bool = False
    text: TextMatch | None = None

    def matches(self, params: list[list[str]]) -> bool:
        values = [v for p in params
                  for v in (p[1:] if len(p) > 1 else [p[0]])
                  if (p[0] if len(p) > 1 else "TYPE").upper() == self.name]
        if self.undefined:
            return not values
        if not values:
            return False
        return self.text is None or any(self.text.matches(v) for v in values)


@dataclass(frozen=True, slots=True)
class PropFilter:
    name: str
    all_of: bool = False
    undefined: bool = False
    texts: tuple[TextMatch, ...] = ()
    params: tuple[ParamFilter, ...] = ()

    def matches(self, properties: list[tuple[list[list[str]], str]]) -> bool:
        if self.undefined:
            return not properties
        return any(self._one(params, value) for params, value in properties)

    def _one(self, params: list[list[str]], value: str) -> bool:
        tests = [t.matches(value) for t in self.texts] + [p.matches(params) for p in self.params]
        if not tests:
            return True
        return all(tests) if self.all_of else any(tests)


@dataclass(frozen=True, slots=True)
class CardFilter:
    """The whole filter; an empty one matches every card."""

    props: tuple[PropFilter, ...] = ()
    all_of: bool = False
    names: frozenset[str] = field(default_factory=frozenset)

    def matches(self, card_text: str) -> bool:
        if not self.props:
            return True
        properties = _properties(card_text, self.names)
        tests = (p.matches(properties.get(p.name, [])) for p in self.props)
        return all(tests) if self.all_of else any(tests)


def parse_filter(node: ET.Element | None) -> CardFilter:
    """A ``CARDDAV:filter`` element as a :class:`CardFilter`; 400 for a malformed one, 403
    (``CARDDAV:supported-collation``/``supported-filter``) for what is not supported."""
    if node is None:
        return CardFilter()
    props = tuple(_prop_filter(child) for child in node if child.tag == q(CARDDAV, "prop-filter"))
    return CardFilter(props, _all_of(node), frozenset(p.name for p in props))


def _all_of(node: ET.Element) -> bool:
    test = node.get("test", "anyof")
    if test not in ("anyof", "allof"):
        raise DavError(400, f"filter test must be anyof or allof, not {test!r}")
    return test == "allof"


def _name(node: ET.Element, what: str) -> str:
    name = (node.get("name") or "").strip().upper()
    if not name:
        raise DavError(400, f"a {what} needs a name attribute")
    return name


def _prop_filter(node: ET.Element) -> PropFilter:
    undefined = node.find(q(CARDDAV, "is-not-defined")) is not None
    texts = tuple(_text_match(t) for t in node.findall(q(CARDDAV, "text-match")))
    params = tuple(_param_filter(p) for p in node.findall(q(CARDDAV, "param-filter")))
    return PropFilter(_name(node, "prop-filter"), _all_of(node), undefined, texts, params)


def _param_filter(node: ET.Element) -> ParamFilter:
    text = node.find(q(CARDDAV, "text-match"))
    undefined = node.find(q(CARDDAV, "is-not-defined")) is not None
    return ParamFilter(_name(node, "param-filter"), undefined,
                       None if text is None else _text_match(text))


def _text_match(node: ET.Element) -> TextMatch:
    match_type = node.get("match-type", "contains")
    if match_type not in _MATCH_TYPES:
        raise DavError(400, f"text-match match-type must be one of {', '.join(_MATCH_TYPES)}",
                       q(CARDDAV, "supported-filter"))
    collation = node.get("collation", "i;unicode-casemap")
    if collation not in _COLLATIONS:
        raise DavError(403, f"collation {collation!r} is not supported; use one of "
                            f"{', '.join(_COLLATIONS)}", q(CARDDAV, "supported-collation"))
    negate = node.get("negate-condition", "no")
    if negate not in ("yes", "no"):
        raise DavError(400, "text-match negate-condition must be yes or no")
    return TextMatch(node.text or "", match_type, collation, negate == "yes")


def _properties(card_text: str, names: frozenset[str]) -> dict[str, list[tuple[list[list[str]],
                                                                              str]]]:
    """The card's properties named in ``names``: parameters and value (escapes undone)."""
    found: dict[str, list[tuple[list[list[str]], str]]] = {}
    for line in card_text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n"):
        name = property_name(line) if line else ""
        if name not in names:
            continue
        try:
            _, params, value, _ = parseLine(line)
        except ParseError:
            continue
        text = ",".join(stringToTextValues(value, listSeparator=None) or [""])
        found.setdefault(name, []).append((params, text))
    return found
