"""``mmlong demo``: the command, its Gradio page, shared settings, the evidence timeline and keyframes."""
