"""Benchmarks against peers, measured side by side in one run: `bench/run` (see docs/benchmarks.md)."""
