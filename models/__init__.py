"""Model adapters: the offline Socratic default and native VLM families."""
