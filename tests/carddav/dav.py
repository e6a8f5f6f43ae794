"""Small WebDAV helpers for the tests: request bodies, and reading multistatus answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

DAV = "{DAV:}"
CARD = "{urn:ietf:params:xml:ns:carddav}"
BOOK = "/dav/alice/contacts/"


def card_text(name: str, *, uid: str, version: str = "4.0", extra: list[str] | None = None
              ) -> str:
    lines = ["BEGIN:VCARD", f"VERSION:{version}", f"UID:{uid}", f"FN:{name}",
             *(extra or []), "END:VCARD"]
    return "".join(line + "\r\n" for line in lines)


def responses(root: ET.Element) -> list[ET.Element]:
    return root.findall("{DAV:}response")


def prop_text(root: ET.Element, path: str) -> str | None:
    return root.findtext(f".//{{DAV:}}prop/{path}")


async def propfind(http: httpx.AsyncClient, url: str, props: list[str], *, depth: str
                   ) -> ET.Element:
    inner = "".join(f'<x{n}:{p.split("}")[1]} xmlns:x{n}="{p[1:].split("}")[0]}"/>'
                    for n, p in enumerate(props))
    body = f'<D:propfind xmlns:D="DAV:"><D:prop>{inner}</D:prop></D:propfind>'
    answer = await http.request("PROPFIND", url, content=body, headers={"Depth": depth})
    assert answer.status_code == 207, answer.text
    return ET.fromstring(answer.content)


async def multiget(http: httpx.AsyncClient, hrefs: list[str], *, version: str | None = None
                   ) -> ET.Element:
    attributes = f' content-type="text/vcard" version="{version}"' if version else ""
    body = (f'<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="{CARD[1:-1]}">'
            f"<D:prop><D:getetag/><C:address-data{attributes}/></D:prop>"
            + "".join(f"<D:href>{h}</D:href>" for h in hrefs) + "</C:addressbook-multiget>")
    answer = await http.request("REPORT", BOOK, content=body, headers={"Depth": "0"})
    assert answer.status_code == 207, answer.text
    return ET.fromstring(answer.content)


async def sync(http: httpx.AsyncClient, token: str, *, limit: int | None = None,
               props: list[str] | None = None) -> ET.Element:
    wanted = "".join(f"<D:{p.split('}')[1]}/>" for p in props or ["{DAV:}getetag"])
    limit_xml = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit else ""
    body = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
            f"<D:sync-level>1</D:sync-level>{limit_xml}<D:prop>{wanted}</D:prop>"
            "</D:sync-collection>")
    answer = await http.request("REPORT", BOOK, content=body)
    assert answer.status_code == 207, answer.text
    return ET.fromstring(answer.content)
