"""Test-only infrastructure shared by tests and benchmarks (a simulated multi-node Ray cluster)."""
