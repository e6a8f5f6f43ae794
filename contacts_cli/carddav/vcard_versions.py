"""Content lines between vCard 3.0 (RFC 2426) and 4.0 (RFC 6350), and line folding.

A card is stored in the version its client wrote; a client asking for the other version gets
each stored line converted where the two differ in what clients actually send:

==========================================  ============================================
3.0                                         4.0
==========================================  ============================================
``PHOTO;ENCODING=b;TYPE=JPEG:<base64>``     ``PHOTO:data:image/jpeg;base64,<base64>``
(also LOGO, SOUND, KEY)
``PHOTO;VALUE=uri:https://...``             ``PHOTO:https://...``
``TEL;TYPE=cell,pref:+1...``                ``TEL;TYPE=cell;PREF=1:+1...``
``TEL:+1...``                               ``TEL;VALUE=uri:tel:+1...`` (4.0 -> 3.0 only)
``X-ADDRESSBOOKSERVER-KIND`` / ``-MEMBER``  ``KIND`` / ``MEMBER`` (Apple's 3.0 names)
``TEL;CELL:...`` (a bare parameter)         ``TEL;TYPE=CELL:...``
``CHARSET=...``                             (dropped: 4.0 is UTF-8 only)
==========================================  ============================================

Anything else is passed on as written: a client ignores a property it does not know, so it
is better kept than dropped.
"""

from __future__ import annotations

import re

from vobject.base import ParseError, parseLine

FOLD_OCTETS = 75
_BINARY = {"PHOTO": "image", "LOGO": "image", "SOUND": "audio", "KEY": "application"}
_APPLE = {"KIND": "X-ADDRESSBOOKSERVER-KIND", "MEMBER": "X-ADDRESSBOOKSERVER-MEMBER"}
_FROM_APPLE = {v: k for k, v in _APPLE.items()}
_NEEDS_QUOTES = frozenset(';:,')
_DATES = frozenset(("BDAY", "ANNIVERSARY", "X-ANNIVERSARY"))
_EXTENDED_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T.*)?$")
_BASIC_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})(T.*)?$")

Params = list[list[str]]


def property_name(line: str) -> str:
    """The upper-case property name of a content line, without its group."""
    head = line.split(":", 1)[0].split(";", 1)[0]
    return head.rpartition(".")[2].upper()


def fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character (RFC 6350 3.2)."""
    encoded = line.encode()
    if len(encoded) <= FOLD_OCTETS:
        return line
    parts: list[str] = []
    start = 0
    limit = FOLD_OCTETS
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        while end < len(encoded) and encoded[end] & 0xC0 == 0x80:  # a continuation byte
            end -= 1
        parts.append(encoded[start:end].decode())
        start, limit = end, FOLD_OCTETS - 1
    return "\r\n ".join(parts)


def convert_line(line: str, source: str, target: str) -> str:
    """``line``, written for vCard ``source``, as vCard ``target`` says it."""
    if source == target:
        return line
    try:
        written, params, value, group = parseLine(line)
    except ParseError:
        return line
    name = written.upper()
    params = [[p[0].upper(), *p[1:]] if len(p) > 1 else ["TYPE", p[0]] for p in params]
    params = [p for p in params if p[0] != "CHARSET"]
    if target == "4.0":
        name, params, value = _to_4(name, params, value)
    else:
        name, params, value = _to_3(name, params, value)
    if name in _DATES:
        value = _date(value, target)
    name = written if name == written.upper() else name  # the client's spelling, if kept
    head = f"{group}.{name}" if group else name
    return head + "".join(_param(p) for p in params) + ":" + value


def _to_4(name: str, params: Params, value: str) -> tuple[str, Params, str]:
    name = _FROM_APPLE.get(name, name)
    types = _values(params, "TYPE")
    if any(t.lower() == "pref" for t in types):
        types = [t for t in types if t.lower() != "pref"]
        params = _set(params, "TYPE", types)
        if not _values(params, "PREF"):
            params.append(["PREF", "1"])
    if name in _BINARY:
        encoding = [e.lower() for e in _values(params, "ENCODING")]
        if encoding and encoding[0] in ("b", "base64"):
            subtype = (types[0] if types else "octet-stream").lower()
            media = subtype if "/" in subtype else f"{_BINARY[name]}/{subtype}"
            value = f"data:{media};base64,{value}"
            params = _set(_set(params, "ENCODING", []), "TYPE", [])
        elif any(v.lower() == "uri" for v in _values(params, "VALUE")):
            params = _set(params, "VALUE", [])
    return name, params, value


def _to_3(name: str, params: Params, value: str) -> tuple[str, Params, str]:
    name = _APPLE.get(name, name)
    if _values(params, "PREF"):
        params = _set(params, "PREF", [])
        params = _set(params, "TYPE", [*_values(params, "TYPE"), "pref"])
    is_uri = any(v.lower() == "uri" for v in _values(params, "VALUE"))
    if name in _BINARY and value.startswith("data:") and ";base64," in value:
        media, _, data = value[5:].partition(";base64,")
        subtype = media.rpartition("/")[2].upper() or "JPEG"
        params = _set(params, "VALUE", [])
        params += [["ENCODING", "b"], ["TYPE", subtype]]
        value = data
    elif name in _BINARY and not is_uri and ":" in value:
        params.append(["VALUE", "uri"])
    elif name == "TEL" and value.lower().startswith("tel:"):
        params = _set(params, "VALUE", [])
        number, _, options = value[4:].partition(";")
        ext = next((o[4:] for o in options.split(";") if o.lower().startswith("ext=")), "")
        value = f"{number} ext. {ext}" if ext else number
    return name, params, value


def _date(value: str, target: str) -> str:
    """A date as the target writes it: 4.0 only knows the basic form (19801231), 3.0 readers
    mostly expect the extended one (1980-12-31)."""
    if target == "4.0" and (match := _EXTENDED_DATE.match(value)):
        return "".join(part for part in match.groups() if part)
    if target == "3.0" and (match := _BASIC_DATE.match(value)):
        year, month, day, time = match.groups()
        return f"{year}-{month}-{day}{time or ''}"
    return value


def _values(params: Params, name: str) -> list[str]:
    return [v for p in params if p[0] == name for v in p[1:]]


def _set(params: Params, name: str, values: list[str]) -> Params:
    """``params`` with parameter ``name`` holding ``values`` (removed when empty), in place
    of its first occurrence."""
    out: Params = []
    placed = False
    for p in params:
        if p[0] != name:
            out.append(p)
        elif not placed and values:
            out.append([name, *values])
            placed = True
        else:
            placed = True
    if not placed and values:
        out.append([name, *values])
    return out


def _param(param: list[str]) -> str:
    name, *values = param
    return f";{name}=" + ",".join(
        f'"{v}"' if _NEEDS_QUOTES & set(v) and '"' not in v else v for v in values
    )
