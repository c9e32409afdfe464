"""``mmlong bench ...``: the command group and one module per bench."""
