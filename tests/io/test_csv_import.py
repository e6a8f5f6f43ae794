"""CSV import: our columns, Google and Outlook headers, quoting, line numbers, bad rows."""

from __future__ import annotations

import io

import pytest

from contacts_cli.domain import validate_new
from contacts_cli.io import ImportFileError, ParsedRow, read_csv


def parse(text: str) -> list[ParsedRow]:
    return list(read_csv(io.StringIO(text)))


def test_our_columns_with_multi_values_and_quoting() -> None:
    rows = parse(
        "name,emails,phones,company,title,address,birthday,notes,labels\n"
        'Ada,a@x.org; b@x.org ,+12025550123,"Engines, Ltd",Countess,"1 Main St\nLondon",'
        '1815-12-10,"said ""hi""",math;friends\n'
    )
    assert rows == [
        ParsedRow(
            2,
            {
                "name": "Ada",
                "emails": ["a@x.org", "b@x.org"],
                "phones": ["+12025550123"],
                "company": "Engines, Ltd",
                "title": "Countess",
                "address": "1 Main St\nLondon",
                "birthday": "1815-12-10",
                "notes": 'said "hi"',
                "labels": ["math", "friends"],
            },
        )
    ]
    assert rows[0].data is not None
    assert validate_new(rows[0].data)["company"] == "Engines, Ltd"


def test_line_numbers_point_at_the_record_start() -> None:
    rows = parse('Name,Notes\r\n"A","multi\r\nline\r\nnote"\r\n\r\nB,\r"C","x,y"\n')
    assert [(r.line, r.data and r.data["name"]) for r in rows] == [(2, "A"), (6, "B"), (7, "C")]
    assert rows[0].data is not None and rows[0].data["notes"] == "multi\nline\nnote"


def test_bom_and_non_ascii() -> None:
    rows = parse("\ufeffname,emails\nZoë Ünal,zoë@exämple.org\n李小龍,\n")
    assert [r.data for r in rows] == [
        {"name": "Zoë Ünal", "emails": ["zoë@exämple.org"]},
        {"name": "李小龍"},
    ]


def test_bad_rows_are_reported_and_the_rest_read() -> None:
    rows = parse('name,emails\nA,a@x.org,extra\n"B"x,b@x.org\n,c@x.org\nD,d@x.org\n"E,e@x.org\n')
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]
    assert not rows[0].ok and "has 3 fields but the header has 2" in rows[0].errors[0].message
    assert not rows[1].ok and "malformed CSV" in rows[1].errors[0].message
    assert rows[2].data == {"name": "", "emails": ["c@x.org"]}
    assert rows[3].ok
    assert rows[4].errors[0].message == "malformed CSV: unterminated quoted field"


def test_trailing_empty_cells_are_fine() -> None:
    assert parse("name,emails,notes\nA,,\nB\n")[1].data == {"name": "B"}
    assert parse("name,emails\nA,a@x.org,,\n")[0].ok


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("name,nickname", "unknown column 'nickname'"),
        ("emails,phones", "no 'name' column"),
        ("name,email,emails", "appears twice"),
        ('"name', "cannot read the CSV header"),
    ],
)
def test_bad_headers_fail_the_file(header: str, fragment: str) -> None:
    with pytest.raises(ImportFileError, match=fragment) as info:
        parse(header + "\nx,y\n")
    assert info.value.line == 1


def test_unnamed_columns_are_ignored() -> None:
    assert parse("name,emails,\nA,a@x.org,\n")[0].data == {"name": "A", "emails": ["a@x.org"]}


def test_header_aliases_and_read_only_columns_are_accepted() -> None:
    rows = parse("ID,Name,Email,Phone,Label,version\n1,A,a@x.org,+12025550123,vip,3\n")
    assert rows[0].data == {
        "name": "A",
        "emails": ["a@x.org"],
        "phones": ["+12025550123"],
        "labels": ["vip"],
    }


GOOGLE = (
    "Name,Given Name,Additional Name,Family Name,Nickname,Birthday,Notes,Group Membership,"
    "E-mail 1 - Type,E-mail 1 - Value,E-mail 2 - Type,E-mail 2 - Value,Phone 1 - Type,"
    "Phone 1 - Value,Organization 1 - Name,Organization 1 - Title,Address 1 - Formatted\n"
    "Ada Lovelace,Ada,,Lovelace,,1815-12-10,Note,* myContacts ::: Friends ::: * starred,"
    "* Home,ada@x.org ::: ada2@x.org,Work,ada@work.org,Mobile,+44 20 7946 0958,Engines,"
    'Countess,"12 St James\'s Sq\nLondon"\n'
    ",Grace,,Hopper,,--12-09,,,,grace@navy.mil,,,,,,,\n"
    ",,,,,,,* myContacts,,,,,Mobile,+1 202 555 0123,Navy,,\n"
)


def test_google_contacts_export() -> None:
    rows = parse(GOOGLE)
    assert [r.line for r in rows] == [2, 4, 5]
    assert rows[0].data == {
        "name": "Ada Lovelace",
        "emails": ["ada@x.org", "ada2@x.org", "ada@work.org"],
        "phones": ["+44 20 7946 0958"],
        "company": "Engines",
        "title": "Countess",
        "address": "12 St James's Sq\nLondon",
        "birthday": "1815-12-10",
        "notes": "Note",
        "labels": ["Friends"],
    }
    assert rows[1].data == {
        "name": "Grace Hopper",
        "emails": ["grace@navy.mil"],
        "birthday": "--12-09",
    }
    # No name at all: the organisation stands in, so the row is still importable.
    assert rows[2].data == {"name": "Navy", "phones": ["+1 202 555 0123"], "company": "Navy"}
    for row in rows:
        assert row.data is not None
        validate_new(row.data)


def test_new_google_export_header() -> None:
    rows = parse(
        "First Name,Middle Name,Last Name,Labels,E-mail 1 - Label,E-mail 1 - Value,"
        "Organization Name,Organization Title\n"
        "Ada,King,Lovelace,* myContacts ::: Math,Home,ada@x.org,Engines,Countess\n"
    )
    assert rows[0].data == {
        "name": "Ada King Lovelace",
        "emails": ["ada@x.org"],
        "company": "Engines",
        "title": "Countess",
        "labels": ["Math"],
    }


OUTLOOK = (
    "First Name,Middle Name,Last Name,Company,Job Title,Business Street,Business City,"
    "Business State,Business Postal Code,Business Country/Region,Business Phone,Home Phone,"
    "Mobile Phone,Birthday,Categories,E-mail Address,E-mail 2 Address,Notes\n"
    "Charles,,Babbage,Engines,Inventor,1 Dorset St,London,,W1U,UK,+44 20 7946 0001,,"
    '+44 7700 900123,12/26/1791,Work;VIP,cb@x.org,charles@y.org,"Difference, engine"\n'
    "Nobody,,,,,,,,,,,,,0/0/00,,,,\n"
)


def test_outlook_export() -> None:
    rows = parse(OUTLOOK)
    assert rows[0].data == {
        "name": "Charles Babbage",
        "emails": ["cb@x.org", "charles@y.org"],
        "phones": ["+44 7700 900123", "+44 20 7946 0001"],
        "company": "Engines",
        "title": "Inventor",
        "address": "1 Dorset St, London, W1U, UK",
        "birthday": "1791-12-26",
        "notes": "Difference, engine",
        "labels": ["Work", "VIP"],
    }
    assert rows[1].data == {"name": "Nobody"}
    for row in rows:
        assert row.data is not None
        validate_new(row.data)


def test_streaming_does_not_read_everything_first() -> None:
    class Counting(io.StringIO):
        reads = 0

        def read(self, size: int | None = -1, /) -> str:
            Counting.reads += 1
            return super().read(size)

    text = "name\n" + "".join(f"N{i}\n" for i in range(50_000))
    stream = Counting(text)
    rows = read_csv(stream)
    assert next(rows).data == {"name": "N0"}
    assert stream.tell() < len(text)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_files(sep: str) -> None:
    rows = parse(f'name{sep}emails{sep}notes\nAda{sep}"a@x.org;b@x.org"{sep}"x, y"\n')
    assert rows[0].data == {"name": "Ada", "emails": ["a@x.org", "b@x.org"], "notes": "x, y"}
    assert rows[0].line == 2


def test_quoted_separators_in_the_header_do_not_fool_the_sniffer() -> None:
    rows = parse('name,"notes"\n"A;B;C",x\n')
    assert rows[0].data == {"name": "A;B;C", "notes": "x"}
