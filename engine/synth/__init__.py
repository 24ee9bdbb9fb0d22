"""The synthetic verifiable corpus: six Pillow-rendered task families with a difficulty knob."""
from engine.synth.config import FAMILIES, SynthConfig
from engine.synth.corpus import build_corpus, generate_split, make_sample

__all__ = ["FAMILIES", "SynthConfig", "build_corpus", "generate_split", "make_sample"]
