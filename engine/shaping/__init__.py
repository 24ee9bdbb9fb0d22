"""Shaping: difficulty-tagged shards -> selections, Curr-ReFT stage variants, domain mixtures, trainer exports."""
