"""Counted FLOPs for the bench checks: ``torch.utils.flop_counter`` with the CPU flash-attention kernel counted
(``4 n^2 d`` per head: 4 x 8^2 x 4 x 2 heads below).

>>> import torch
>>> q = torch.randn(1, 2, 8, 4)
>>> counted_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))[1]
2048
"""

from __future__ import annotations

from typing import Any


def counted_flops(fn: Any) -> tuple[Any, int]:
    """``fn()`` under ``FlopCounterMode`` (CPU flash SDPA counted with torch's own SDPA formula)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = cpu_flash
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        result = fn()
    return result, counter.get_total_flops()
