"""Benchmarks (not part of the product; run with ``python -m bench.<name>``)."""
