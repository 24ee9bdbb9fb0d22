"""Canonical sample model, guarded image decoding, shards and format adapters."""
