"""The WebDAV properties of each resource: service root, principal, address book, card.

Each property is a function of what the request already fetched (:class:`View`): the user,
and for the address book its sync position, for a card its contact. A property a resource
does not have is answered 404 inside the multistatus (RFC 4918 9.1); ``allprop`` answers the
properties marked for it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime

from contacts_cli.carddav import urls
from contacts_cli.carddav.davxml import CALENDARSERVER, CARDDAV, DAV, element, href, q
from contacts_cli.carddav.rendered import card_text
from contacts_cli.carddav.vcard import CONTENT_TYPE, DEFAULT_VERSION, MEDIA_TYPE
from contacts_cli.domain import CARD_VERSIONS, Contact
from contacts_cli.domain.validation import MAX_CARD_CHARS

MAX_RESOURCE_BYTES = MAX_CARD_CHARS
"""The largest card a client may PUT (advertised as ``CARDDAV:max-resource-size``)."""


@dataclass(frozen=True, slots=True)
class View:
    """One resource as a request sees it."""

    target: urls.Target
    user: str
    sequence_nr: int = 0
    contact: Contact | None = None
    version: str = DEFAULT_VERSION

    @property
    def url(self) -> str:
        kind = self.target.kind
        if kind == "card":
            assert self.contact is not None
            return urls.card_url(self.user, self.contact.id)
        if kind == "book":
            return urls.book_url(self.user)
        return urls.principal_url(self.user) if kind == "principal" else urls.ROOT


def etag(contact: Contact) -> str:
    """A card's ETag: its contact's version (a strong validator: any change bumps it)."""
    return f'"{contact.version}"'


def http_date(contact: Contact) -> str:
    """The contact's last change as an HTTP date (``Last-Modified``, ``getlastmodified``)."""
    return format_datetime(contact.updated_at.astimezone(UTC), usegmt=True)


def ctag(sequence_nr: int) -> str:
    return f'"{sequence_nr}"'


Property = Callable[[View], ET.Element | None]


def _resourcetype(view: View) -> ET.Element:
    kinds = {
        "root": [q(DAV, "collection")],
        "principal": [q(DAV, "collection"), q(DAV, "principal")],
        "book": [q(DAV, "collection"), q(CARDDAV, "addressbook")],
        "card": [],
    }[view.target.kind]
    return element(q(DAV, "resourcetype"), None, *(ET.Element(k) for k in kinds))


def _privileges(view: View) -> ET.Element:
    names = ["read", "write", "write-content", "write-properties", "bind", "unbind",
             "read-current-user-privilege-set"]
    return element(q(DAV, "current-user-privilege-set"), None, *(
        element(q(DAV, "privilege"), None, ET.Element(q(DAV, name))) for name in names
    ))


def _reports(view: View) -> ET.Element:
    reports = [q(CARDDAV, "addressbook-multiget"), q(CARDDAV, "addressbook-query"),
               q(DAV, "sync-collection")]
    return element(q(DAV, "supported-report-set"), None, *(
        element(q(DAV, "supported-report"), None, element(q(DAV, "report"), None,
                                                          ET.Element(name)))
        for name in reports
    ))


def _address_data_types(view: View) -> ET.Element:
    return element(q(CARDDAV, "supported-address-data"), None, *(
        ET.Element(q(CARDDAV, "address-data-type"),
                   {"content-type": MEDIA_TYPE, "version": version})
        for version in CARD_VERSIONS
    ))


def _only(kinds: str, prop: Property) -> Property:
    """``prop`` on the resources of ``kinds`` (space-separated), absent on the others."""
    allowed = frozenset(kinds.split())
    return lambda view: prop(view) if view.target.kind in allowed else None


def _card(prop: Callable[[Contact, View], ET.Element]) -> Property:
    return lambda view: None if view.contact is None else prop(view.contact, view)


PROPERTIES: dict[str, Property] = {
    q(DAV, "resourcetype"): _resourcetype,
    q(DAV, "current-user-principal"): lambda view: element(
        q(DAV, "current-user-principal"), None, href(urls.principal_url(view.user))),
    q(DAV, "current-user-privilege-set"): _privileges,
    q(DAV, "owner"): _only("principal book card", lambda view: element(
        q(DAV, "owner"), None, href(urls.principal_url(view.user)))),
    q(DAV, "principal-URL"): _only("principal", lambda view: element(
        q(DAV, "principal-URL"), None, href(urls.principal_url(view.user)))),
    q(DAV, "principal-collection-set"): lambda view: element(
        q(DAV, "principal-collection-set"), None, href(urls.ROOT)),
    q(CARDDAV, "addressbook-home-set"): _only("principal", lambda view: element(
        q(CARDDAV, "addressbook-home-set"), None, href(urls.principal_url(view.user)))),
    q(DAV, "displayname"): lambda view: element(q(DAV, "displayname"), {
        "root": "Contacts service", "principal": view.user, "book": "Contacts",
        "card": view.contact.name if view.contact else "",
    }[view.target.kind]),
    q(CARDDAV, "addressbook-description"): _only("book", lambda view: element(
        q(CARDDAV, "addressbook-description"), f"The contacts of {view.user}")),
    q(DAV, "sync-token"): _only("book", lambda view: element(
        q(DAV, "sync-token"), urls.sync_token(view.user, view.sequence_nr))),
    q(CALENDARSERVER, "getctag"): _only("book", lambda view: element(
        q(CALENDARSERVER, "getctag"), ctag(view.sequence_nr))),
    q(DAV, "supported-report-set"): _only("book", _reports),
    q(CARDDAV, "supported-address-data"): _only("book", _address_data_types),
    q(CARDDAV, "max-resource-size"): _only("book", lambda view: element(
        q(CARDDAV, "max-resource-size"), str(MAX_RESOURCE_BYTES))),
    q(DAV, "getetag"): lambda view: (
        element(q(DAV, "getetag"), etag(view.contact)) if view.contact is not None
        else element(q(DAV, "getetag"), ctag(view.sequence_nr)) if view.target.kind == "book"
        else None),
    q(DAV, "getcontenttype"): _card(lambda contact, view: element(
        q(DAV, "getcontenttype"), CONTENT_TYPE)),
    q(DAV, "getcontentlength"): _card(lambda contact, view: element(
        q(DAV, "getcontentlength"), str(len(card_text(contact, view.version).encode())))),
    q(DAV, "getlastmodified"): _card(lambda contact, view: element(
        q(DAV, "getlastmodified"), http_date(contact))),
}

ALLPROP = (
    q(DAV, "resourcetype"), q(DAV, "displayname"), q(DAV, "getetag"),
    q(DAV, "getcontenttype"), q(DAV, "getlastmodified"), q(CALENDARSERVER, "getctag"),
    q(DAV, "sync-token"),
)
"""What ``allprop`` answers (RFC 4918 9.1: the live properties a client commonly wants; the
expensive ``getcontentlength`` and the ACL ones only when named)."""


def evaluate(view: View, names: list[str]) -> tuple[list[ET.Element], list[str]]:
    """The values of the properties ``names`` on ``view``, and the names it does not have."""
    found: list[ET.Element] = []
    missing: list[str] = []
    for name in names:
        prop = PROPERTIES.get(name)
        value = prop(view) if prop is not None else None
        if value is None:
            missing.append(name)
        else:
            found.append(value)
    return found, missing


def names_of(view: View) -> list[str]:
    """The properties ``view`` has (for ``propname``)."""
    return [name for name, prop in PROPERTIES.items() if prop(view) is not None]
