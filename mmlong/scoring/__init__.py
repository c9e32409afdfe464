"""Frame scoring: relevance to the question, novelty and rarity of frames, used by samplers, compressors, models and
the demo.
"""
