"""One budget for a run: a visual-token count (``2048``) or a memory size (``12GB``, ``512MiB``).

``--budget`` takes either. A token budget is what the compressor chain should meet (``ctx.budget``); a memory
budget is what the whole run may use at its peak, checked by :mod:`mmlong.planner` before anything heavy loads.

Units: ``B``, ``KB``/``MB``/``GB``/``TB`` (powers of 1000) and ``KiB``/``MiB``/``GiB``/``TiB`` (powers of 1024),
case-insensitive; ``K``/``M``/``G``/``T`` alone mean the binary units (as ``free -h`` prints them).

>>> parse_budget("2048")
Budget(tokens=2048, bytes=None)
>>> parse_budget("12GB").bytes, parse_budget("512MiB").bytes, parse_budget("1.5G").bytes
(12000000000, 536870912, 1610612736)
>>> str(parse_budget("24GB")), str(parse_budget("2048"))
('24.0 GB', '2048 tokens')
>>> parse_budget("12XB")
Traceback (most recent call last):
...
mmlong.budget.BudgetError: --budget '12XB': unknown unit 'XB'; write a token count (2048) or a memory size ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmlong.errors import ConfigError

_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
HINT = "write a token count (2048) or a memory size (12GB, 512MiB)"


class BudgetError(ConfigError):
    """A ``--budget`` value that is neither a positive token count nor a memory size."""


@dataclass(frozen=True)
class Budget:
    """Exactly one of ``tokens`` (visual tokens the chain should meet) and ``bytes`` (peak memory) is set."""

    tokens: int | None = None
    bytes: int | None = None

    def __str__(self) -> str:
        return f"{self.tokens} tokens" if self.tokens is not None else format_bytes(self.bytes or 0)


def parse_budget(text: str | int) -> Budget:
    """``"2048"`` -> tokens; ``"12GB"``, ``"512MiB"``, ``"1.5G"`` -> bytes. Bad values raise :class:`BudgetError`."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise BudgetError(f"--budget {text!r}: {HINT}")
    match = _PATTERN.match(text)
    if not match:
        raise BudgetError(f"--budget {text!r}: {HINT}")
    number, unit = match.group(1), match.group(2).lower()
    if not unit:
        if not re.fullmatch(r"[0-9]+", number):
            raise BudgetError(f"--budget {text!r}: a token budget is a whole number; {HINT}")
        tokens = int(number)
        if tokens < 1:
            raise BudgetError(f"--budget {text!r}: a token budget must be at least 1")
        return Budget(tokens=tokens)
    if unit not in _UNITS:
        raise BudgetError(f"--budget {text!r}: unknown unit {match.group(2)!r}; {HINT}")
    scaled = float(number) * _UNITS[unit]
    if not scaled < 2**63:  # 1e400MB is infinite; nothing has that much memory
        raise BudgetError(f"--budget {text!r}: too large for a memory size; {HINT}")
    size = int(round(scaled))
    if size < 1:
        raise BudgetError(f"--budget {text!r}: a memory budget must be more than 0 bytes")
    return Budget(bytes=size)


def format_bytes(size: float) -> str:
    """``12000000000`` -> ``'12.0 GB'`` (decimal units, one decimal; MB below a GB, kB below a MB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def budget_argument(text: str) -> Budget:
    """argparse ``type=`` for ``--budget``: a :class:`Budget`, or argparse's own one-line usage error."""
    import argparse

    try:
        return parse_budget(text)
    except BudgetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
