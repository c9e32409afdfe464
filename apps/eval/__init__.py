"""``mmlong eval ...``: the command, the Video-MME/LongVideoBench parsers, the benchmark runner and ``eval
compare``.
"""
