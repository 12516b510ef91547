"""Tests of the benchmark code under benchmarks/."""
