"""The fast XML writer says what ElementTree would: the same names, text and attributes
once parsed, however the values are escaped and whatever namespaces the elements use."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from contacts_cli.carddav import davxml
from contacts_cli.carddav.xmlwrite import CALENDARSERVER, CARDDAV, DAV, to_text

AWKWARD = 'a & b < c > d "quoted" \'single\' tab\there\r\nnext line ]]> é 👍'


def _tree() -> ET.Element:
    root = ET.Element(f"{{{DAV}}}prop")
    ET.SubElement(root, f"{{{DAV}}}getetag").text = '"12"'
    data = ET.SubElement(root, f"{{{CARDDAV}}}address-data", {"version": "4.0"})
    data.text = "BEGIN:VCARD\r\nFN:A & B <x>\r\nEND:VCARD\r\n"
    ET.SubElement(root, f"{{{CALENDARSERVER}}}getctag").text = AWKWARD
    foreign = ET.SubElement(root, "{urn:example:one}thing", {"{urn:example:two}attr": AWKWARD})
    ET.SubElement(foreign, "{urn:example:one}inner").text = "x"
    foreign.tail = "tail & more"
    ET.SubElement(root, "plain", {"k": "v"})
    ET.SubElement(root, f"{{{DAV}}}empty")
    return root


@pytest.mark.parametrize("tree", [_tree(), ET.Element(f"{{{DAV}}}alone")])
def test_parsing_the_output_gives_back_the_tree(tree: ET.Element) -> None:
    ours = ET.canonicalize(to_text(tree), rewrite_prefixes=True)
    reference = ET.canonicalize(ET.tostring(tree, encoding="unicode"), rewrite_prefixes=True)
    assert ours == reference


def test_a_multistatus_parses_to_the_responses_written() -> None:
    status = davxml.Multistatus()
    status.found("/dav/a/contacts/x%20y.vcf", list(_tree()), ["{urn:example:one}missing"],
                 forbidden=[f"{{{DAV}}}displayname"])
    status.status("/dav/a/contacts/gone&.vcf", 404, f"{{{DAV}}}valid-sync-token")
    status.sync_token("http://contacts.invalid/sync/a/7")
    root = ET.fromstring(status.body())
    first, second = root.findall(f"{{{DAV}}}response")
    assert first.findtext(f"{{{DAV}}}href") == "/dav/a/contacts/x%20y.vcf"
    codes = [p.findtext(f"{{{DAV}}}status") for p in first.findall(f"{{{DAV}}}propstat")]
    assert codes == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 403 Forbidden"]
    prop = first.find(f"{{{DAV}}}propstat/{{{DAV}}}prop")
    assert prop is not None
    written = ET.canonicalize(ET.tostring(prop, encoding="unicode"), rewrite_prefixes=True)
    assert written == ET.canonicalize(ET.tostring(_tree(), encoding="unicode"),
                                      rewrite_prefixes=True)
    missing = first.findall(f"{{{DAV}}}propstat")[1].find(f"{{{DAV}}}prop")
    assert missing is not None and [c.tag for c in missing] == ["{urn:example:one}missing"]
    assert second.findtext(f"{{{DAV}}}href") == "/dav/a/contacts/gone&.vcf"
    assert second.find(f"{{{DAV}}}error/{{{DAV}}}valid-sync-token") is not None
    assert root.findtext(f"{{{DAV}}}sync-token") == "http://contacts.invalid/sync/a/7"
