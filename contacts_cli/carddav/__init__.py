"""CardDAV (RFC 6352) beside the REST API: address-book clients sync with the service.

Thunderbird, iOS and macOS Contacts, DAVx5 and vdirsyncer see one address book per user,
served from the same user actors as the CLI and REST, and the user's journal is the sync log
(a sync token is the user's sequence number, RFC 6578). One module per job:

* :mod:`~contacts_cli.carddav.routes`: the routes, methods, preconditions, authentication;
* :mod:`~contacts_cli.carddav.urls`: the URL layout and sync tokens;
* :mod:`~contacts_cli.carddav.davxml`: safe XML parsing, multistatus and error bodies;
* :mod:`~contacts_cli.carddav.properties`: the WebDAV properties of each resource;
* :mod:`~contacts_cli.carddav.propfind`: PROPFIND and PROPPATCH;
* :mod:`~contacts_cli.carddav.reports`: addressbook-multiget, addressbook-query, sync-collection;
* :mod:`~contacts_cli.carddav.filters`: the addressbook-query filter;
* :mod:`~contacts_cli.carddav.vcard`: vCard in (fields plus the stored card) and out;
* :mod:`~contacts_cli.carddav.vcard_versions`: content lines between vCard 3.0 and 4.0.

docs/carddav.md describes the protocol surface and what each client needs.
"""

from contacts_cli.carddav.routes import Authenticate, BackendSource, carddav_routes

__all__ = ["Authenticate", "BackendSource", "carddav_routes"]
