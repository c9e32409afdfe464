"""The offline Socratic answerer: classifier transcript, grounding of evidence, Gemma."""
