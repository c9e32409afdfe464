"""Planning: the analytic memory and FLOP model, per-family shapes, and fitting a resolved run to a memory budget
before anything loads.
"""
