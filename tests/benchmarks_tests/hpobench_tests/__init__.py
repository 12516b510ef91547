"""Tests of benchmarks/hpobench: the recorded curves and their surrogate."""
