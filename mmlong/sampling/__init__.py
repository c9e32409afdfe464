"""Samplers: which frames to read (uniform, fps, window; scan samplers scene and query; the default coverage
sampler).
"""
