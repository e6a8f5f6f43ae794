"""ElementTree elements written as XML text with fixed namespace prefixes, fast.

``ET.tostring`` walks each element twice (once to collect namespaces, once to write) and was
most of the time a 5,000-card listing or multiget took. The service writes only three
namespaces of its own, so they get fixed prefixes (:data:`PREFIXES`) that the enclosing
document declares once (:data:`DECLARATIONS`); a name in any other namespace (a property a
client asked for that the service does not have) is written with a prefix declared on that
element itself, so the output is always namespace-correct.

Text and attribute values are escaped as ElementTree escapes them (``&``, ``<``, ``>``; in
attributes also ``"`` and the white-space characters a parser would normalise).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

DAV = "DAV:"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CALENDARSERVER = "http://calendarserver.org/ns/"

PREFIXES = {DAV: "d", CARDDAV: "card", CALENDARSERVER: "cs"}
DECLARATIONS = "".join(f' xmlns:{prefix}="{ns}"' for ns, prefix in PREFIXES.items())
"""The ``xmlns`` attributes a document's root carries for :data:`PREFIXES`."""

_FOREIGN = "x"
"""The prefix of a name outside :data:`PREFIXES` (declared where it is used)."""

_known: dict[str, str] = {}
"""Clark names in the known namespaces -> their prefixed form (at most :data:`_KNOWN_MAX`:
requests may name any number of made-up properties)."""
_KNOWN_MAX = 1000


def escape_text(text: str) -> str:
    """``text`` as XML character data."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attribute(value: str) -> str:
    """``value`` as a double-quoted attribute value."""
    value = escape_text(value)
    for char, entity in (('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;")):
        if char in value:
            value = value.replace(char, entity)
    return value


def write(node: ET.Element, out: list[str]) -> None:
    """Append ``node`` (with its children, text and tails) to ``out`` as XML text, its names
    in the namespaces of :data:`PREFIXES` unprefixed by any declaration of its own."""
    declarations: dict[str, str] = {}
    name = _name(node.tag, declarations)
    attributes = "".join(f' {_name(key, declarations)}="{escape_attribute(value)}"'
                         for key, value in node.attrib.items())
    declared = "".join(f' xmlns:{prefix}="{escape_attribute(ns)}"'
                       for ns, prefix in declarations.items())
    if node.text is None and len(node) == 0:
        out.append(f"<{name}{declared}{attributes}/>")
    else:
        out.append(f"<{name}{declared}{attributes}>")
        if node.text:
            out.append(escape_text(node.text))
        for child in node:
            write(child, out)
        out.append(f"</{name}>")
    if node.tail:
        out.append(escape_text(node.tail))


def to_text(node: ET.Element) -> str:
    """``node`` as XML text declaring every namespace it uses."""
    out: list[str] = []
    write(node, out)
    text = "".join(out)
    end = next(i for i, c in enumerate(text) if c in " />")
    return f"{text[:end]}{DECLARATIONS}{text[end:]}"


def _name(clark: str, declarations: dict[str, str]) -> str:
    """The prefixed form of a Clark name; a foreign namespace is added to ``declarations``."""
    known = _known.get(clark)
    if known is not None:
        return known
    if not clark.startswith("{"):
        return clark
    namespace, _, local = clark[1:].partition("}")
    if not namespace:
        return local
    prefix = PREFIXES.get(namespace)
    if prefix is not None:
        if len(_known) < _KNOWN_MAX:
            _known[clark] = f"{prefix}:{local}"
        return f"{prefix}:{local}"
    prefix = declarations.setdefault(namespace, f"{_FOREIGN}{len(declarations)}")
    return f"{prefix}:{local}"
