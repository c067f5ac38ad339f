"""Benchmarks that run fmbot and its baseline in the same run and print the ratio (see `run_all`)."""
