"""Benchmarks as a library (MLVU, Video-MME, LongVideoBench, NIAVH and its generator): the eval commands import
these; nothing here imports a command.
"""
