"""The server's side of a vdirsyncer sync: its requests timed from a keep-alive client.

The service runs as its own process (bench/carddav_bench.py's ``this_service``: the test
server on a fresh schema) with ``--contacts`` cards; then vdirsyncer's depth-1 PROPFIND
(``resourcetype``, ``getcontenttype``, ``getetag``) is timed once cold and five times
again, and its ``addressbook-multiget``s of 50 cards covering the whole book, once cold and
three times again. Run from another checkout's folder (``cd OLD && PYTHONPATH=. python
NEW/bench/carddav_server_bench.py``) it measures that checkout's service, for alternated
before/after comparisons.

    python -m bench.carddav_server_bench --contacts 5000
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import carddav_bench as bench

LISTING = (b'<?xml version="1.0" encoding="utf-8" ?><propfind xmlns="DAV:"><prop>'
           b"<resourcetype/><getcontenttype/><getetag/></prop></propfind>")
MULTIGET = ('<?xml version="1.0" encoding="utf-8" ?><C:addressbook-multiget xmlns="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:carddav"><prop><getetag/><C:address-data />'
            "</prop>{hrefs}</C:addressbook-multiget>")
CHUNK = 50
"""Cards per multiget, as vdirsyncer asks for them."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not database_url:
        print("set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL for this service")
        return 2
    with (tempfile.TemporaryDirectory(prefix="carddav-server-") as tmp,
          bench.this_service(database_url, Path(tmp), args.contacts) as server,
          httpx.Client(auth=(bench.USER, bench.PASSWORD), timeout=300) as http):

        def listing() -> bytes:
            answer = http.request("PROPFIND", server.book, content=LISTING,
                                  headers={"Depth": "1"})
            assert answer.status_code == 207, answer.status_code
            return answer.content

        started = time.perf_counter()
        hrefs = re.findall(rb"<(?:\w+:)?href>([^<]*\.vcf)</", listing())
        cold_listing = time.perf_counter() - started
        assert len(hrefs) == args.contacts, len(hrefs)
        bodies = [MULTIGET.format(hrefs="".join(f"<href>{h.decode()}</href>"
                                                for h in hrefs[i:i + CHUNK]))
                  for i in range(0, len(hrefs), CHUNK)]

        def multigets() -> float:
            started = time.perf_counter()
            for body in bodies:
                answer = http.request("REPORT", server.book, content=body,
                                      headers={"Depth": "1"})
                assert answer.status_code == 207, answer.status_code
            return time.perf_counter() - started

        cold_multigets = multigets()
        listings = []
        for _ in range(5):
            started = time.perf_counter()
            listing()
            listings.append(time.perf_counter() - started)
        again = [multigets() for _ in range(3)]
    print(f"{args.contacts} cards, served by {bench.ROOT}:\n"
          f"  depth-1 PROPFIND   first {cold_listing * 1000:.0f} ms, then median "
          f"{statistics.median(listings) * 1000:.0f} ms {ms(listings)}\n"
          f"  {len(bodies)} multigets of {CHUNK}  first {cold_multigets * 1000:.0f} ms, "
          f"then median {statistics.median(again) * 1000:.0f} ms {ms(again)}", flush=True)
    return 0


def ms(values: list[float]) -> str:
    return "[" + ", ".join(f"{v * 1000:.0f}" for v in values) + "]"


if __name__ == "__main__":
    sys.exit(main())
