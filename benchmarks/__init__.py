"""Repeatable benchmarks: `make bench` (or `python -m benchmarks --rows N`).

Each benchmark measures custdq and a baseline in the same run, on the same machine and the
same synthetic file, and prints the ratio. Figures are copied into docs/benchmarks.md by hand, with
the machine they ran on.
"""
