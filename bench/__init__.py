"""Benchmarks: plain scripts run with ``python -m bench.<name>``; not part of pytest."""
