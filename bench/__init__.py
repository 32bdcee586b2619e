"""The benchmark: `python bench/run_bench.py` (docs/benchmarks.md). A package only so that its
modules import each other; nothing here is installed."""
