"""Benchmarks (never run by the tests): `python -m bench.journal_bench`."""
