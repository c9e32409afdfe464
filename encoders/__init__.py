"""Visual encoders: frames -> VisualTokens (one module per family)."""
