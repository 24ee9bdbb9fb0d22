"""Shaping recipes: the difficulty store, selections, mixtures and Curr-ReFT reformulation as jobs
(config + run); the maths they call lives in engine/shaping."""
