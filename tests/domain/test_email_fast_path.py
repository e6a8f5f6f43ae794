"""The ASCII fast path of ``normalise_email`` must agree with email-validator on every input.

A generated corpus of valid and invalid addresses (special-use and numeric domains, IDNA
labels, case-insensitive mailbox names, every length limit's edge) goes through both; each
address twice, so the per-domain memo is exercised cold and warm.
"""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from contacts_cli.domain import validation
from contacts_cli.domain.validation import normalise_email

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
LOCALS = [
    "a", "Ada", "ada.lovelace", "first.last+tag", "x_y-z", "o'neil", "{weird}~|", "1",
    "Postmaster", "ABUSE", "info", "Support", "hostmaster", "noc", "webmaster",
    ".lead", "trail.", "dou..ble", "", "sp ace", "quo\"te", '"quoted"', "a@b", "émile",
    "x" * 64, "x" * 65, "y" * 200, "tab\there", "back\\slash", "semi;colon", "com,ma",
    "(comment)", "<angle>", "ü", "a.b.c.d", "-", "--", "a--b",
]
DOMAINS = [
    "example.org", "EXAMPLE.ORG", "Example.Com", "mail.example.co.uk", "a.io", "x.y.z.museum",
    "localhost", "example", "com", "host.localhost", "a.test", "b.invalid", "c.local",
    "d.onion", "e.arpa", "1.2.3.4", "a.123", "ex-ample.org", "-ex.org", "ex-.org",
    "ab--cd.org", "xn--bcher-kva.example", "xn--bcher-kva.org", "xn--zzzz.org", "xn--.org",
    "a..b.org", ".a.org", "a.org.", "under_score.org", "[127.0.0.1]", "b\u00fccher.org",
    "l" * 63 + ".org", "l" * 64 + ".org", ".".join(["abcdefghi"] * 25) + ".org",
    ".".join(["abcdefghi"] * 26) + ".org", "e.x", "e.x1", "123.org", "org.", "",
    "exa mple.org", "EXAMPLE.invalid", "Mail.Example.ORG",
]


def reference(address: str) -> tuple[bool, str]:
    try:
        return True, str(validate_email(address, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        return False, str(exc)


def ours(address: str) -> tuple[bool, str]:
    try:
        return True, normalise_email(address)
    except ValueError as exc:
        return False, str(exc)


def corpus() -> list[str]:
    rng = random.Random(20261123)
    addresses = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS]
    for _ in range(4000):
        local = ".".join(
            "".join(rng.choice(ATEXT) for _ in range(rng.randint(0, 12)))
            for _ in range(rng.randint(1, 4))
        )
        labels = [
            "".join(rng.choice(string.ascii_letters + string.digits + "-")
                    for _ in range(rng.randint(0, 10)))
            for _ in range(rng.randint(1, 4))
        ]
        labels.append(rng.choice(["org", "COM", "test", "local", "1", "xn--p1ai", "io", ""]))
        addresses.append(f"{local}@{'.'.join(labels)}")
    for total in range(240, 262):  # around the 254 limit, with a valid long domain
        domain = ".".join(["d" * 60] * 3) + ".org"
        addresses.append("l" * (total - len(domain) - 1) + "@" + domain)
    return addresses


@pytest.fixture(autouse=True)
def cold_memo() -> None:
    validation._domain_memo.clear()


def test_fast_path_agrees_with_email_validator() -> None:
    addresses = corpus()
    accepted = 0
    for address in addresses + addresses:
        expected = reference(address)
        assert ours(address) == expected, address
        accepted += expected[0]
    # the corpus exercises both sides: plenty of valid and of invalid addresses
    assert 500 < accepted < len(addresses) * 2 - 500


def test_case_insensitive_mailbox_names_are_lowered() -> None:
    assert normalise_email("PostMaster@Example.ORG") == "postmaster@example.org"
    assert normalise_email("Ada.Lovelace@Example.ORG") == "Ada.Lovelace@example.org"


def test_special_use_domain_refused_with_email_validators_message() -> None:
    with pytest.raises(ValueError, match="special-use or reserved name"):
        normalise_email("ada@host.localhost")
    with pytest.raises(ValueError, match="special-use or reserved name"):
        normalise_email("ada@host.localhost")  # from the memo, same message


def test_memo_is_bounded() -> None:
    for n in range(validation._DOMAIN_MEMO_MAX + 10):
        normalise_email(f"a@d{n}.example.org")
    assert len(validation._domain_memo) <= validation._DOMAIN_MEMO_MAX
