"""Configuration: the flat request (preset < YAML < flags), resolve() into the tree of each plug-in's Config, model
references and budgets.
"""
