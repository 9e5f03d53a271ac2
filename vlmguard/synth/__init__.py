"""``vlmguard synth``: three-stage reasoning data synthesis (hindsight → causal analysis → prompt optimisation)."""
from .config import SynthConfig
from .pipeline import Synthesizer

__all__ = ["SynthConfig", "Synthesizer"]
