"""Native vision-language models: one module per family on a shared base."""
