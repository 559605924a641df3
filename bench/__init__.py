"""Speed and memory benchmarks of the kernels and of whole training iterations (pytest-benchmark).

`pytest bench/` runs them; `python -m bench.report RESULTS.json` turns `--benchmark-json` output into a
markdown table. See bench/README.md.
"""
