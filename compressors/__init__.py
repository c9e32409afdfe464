"""Token compressors: pooling, merging, selection, SceneTilling, memory, V2PE, in-LLM pruning."""
