"""The units every cost and latency is quoted in (shared by :mod:`~hf_supernet.costs`, :mod:`~hf_supernet.latency`
and the model families, which count their own costs)."""

# Log-mel features arrive at 100 frames per second (10 ms hop), the rate of every feature extractor we ship.
FEATURE_FRAMES_PER_SECOND = 100
# Attention cost grows with utterance length, so "FLOPs per second of audio" is quoted for this length.
REFERENCE_SECONDS = 10.0
