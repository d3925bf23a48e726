"""Benchmarks: each module here exposes `main()` and prints ratios against a bare baseline."""
