"""Baseline training programs for throughput comparisons with ganpipe."""
