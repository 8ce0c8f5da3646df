# cython: language_level=3
"""Benchmark-only helpers, written against tvmfast's public C-level API (_core.pxd)."""
