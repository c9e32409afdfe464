"""Apps on top of the Pipeline: CLI, Gradio demo, batch QA, benchmark adapters, bench."""
