"""gradus test suite (a package so that tests.support is importable from benchmarks and job drivers)."""
