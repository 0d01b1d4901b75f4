"""Benchmarks. ``make bench`` (``python -m bench.run``) runs every ``bench/bench_*.py``
module, each in its own process; a module's ``main(argv)`` measures, writes
``bench/results/NAME.json`` and returns the result dict."""
