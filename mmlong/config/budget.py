"""Two budgets, two flags: a visual-token count (``--budget 2048``) and a memory size (``--memory-budget 12GB``).

A token budget is what the compressor chain should meet (``ctx.budget``); a memory budget is what the whole run
may use at its peak, checked by :mod:`mmlong.planning.estimate` before anything heavy loads. Each is parsed once, here,
into its final type (an ``int`` of tokens, an ``int`` of bytes); a value written for the other flag is refused in
one line that names the right flag.

Units of a memory size: ``B``, ``KB``/``MB``/``GB``/``TB`` (powers of 1000) and ``KiB``/``MiB``/``GiB``/``TiB``
(powers of 1024), case-insensitive; ``K``/``M``/``G``/``T`` alone mean the binary units (as ``free -h`` prints
them).

>>> parse_token_budget("2048")
2048
>>> parse_memory_budget("12GB"), parse_memory_budget("512MiB"), parse_memory_budget("1.5G")
(12000000000, 536870912, 1610612736)
>>> parse_token_budget("12GB")
Traceback (most recent call last):
...
mmlong.config.budget.BudgetError: --budget '12GB' is a memory size; pass it as --memory-budget 12GB (--budget is a ...
>>> parse_memory_budget("12XB")
Traceback (most recent call last):
...
mmlong.config.budget.BudgetError: --memory-budget '12XB': unknown unit 'XB'; write a size such as 12GB or 512MiB
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from mmlong.errors import ConfigError

_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
SIZE_HINT = "write a size such as 12GB or 512MiB"


class BudgetError(ConfigError):
    """A ``--budget`` that is not a positive token count, or a ``--memory-budget`` that is not a memory size."""


def _split(text: Any, flag: str, hint: str) -> tuple[str, str]:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if not match:
        raise BudgetError(f"{flag} {text!r}: {hint}")
    return match.group(1), match.group(2)


def parse_token_budget(text: str | int, flag: str = "--budget") -> int:
    """``"2048"`` or ``2048`` -> ``2048`` visual tokens. A memory size is refused, naming ``--memory-budget``."""
    number, unit = _split(text, flag, "a token budget is a whole number of visual tokens (2048)")
    if unit:
        memory_flag = "memory_budget" if flag == "budget" else "--memory-budget"
        raise BudgetError(f"{flag} {text!r} is a memory size; pass it as {memory_flag} {str(text).strip()} "
                          f"({flag} is a whole number of visual tokens, e.g. 2048)")
    if not re.fullmatch(r"[0-9]+", number):
        raise BudgetError(f"{flag} {text!r}: a token budget is a whole number of visual tokens (2048)")
    tokens = int(number)
    if tokens < 1:
        raise BudgetError(f"{flag} {text!r}: a token budget must be at least 1")
    return tokens


def parse_memory_budget(text: str | int, flag: str = "--memory-budget") -> int:
    """``"12GB"``, ``"512MiB"``, ``"1.5G"`` -> bytes; an ``int`` is bytes already. A bare number in a string is
    refused (it is a token count: ``--budget``)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise BudgetError(f"{flag} {text!r}: a memory budget must be more than 0 bytes")
        return text
    number, unit = _split(text, flag, SIZE_HINT)
    if not unit:
        token_flag = "budget" if flag == "memory_budget" else "--budget"
        raise BudgetError(f"{flag} {text!r} has no unit; {SIZE_HINT} (a visual-token count goes to {token_flag})")
    if unit.lower() not in _UNITS:
        raise BudgetError(f"{flag} {text!r}: unknown unit {unit!r}; {SIZE_HINT}")
    scaled = float(number) * _UNITS[unit.lower()]
    if not scaled < 2**63:  # 1e400MB is infinite; nothing has that much memory
        raise BudgetError(f"{flag} {text!r}: too large for a memory size; {SIZE_HINT}")
    size = int(round(scaled))
    if size < 1:
        raise BudgetError(f"{flag} {text!r}: a memory budget must be more than 0 bytes")
    return size


def format_bytes(size: float) -> str:
    """``12000000000`` -> ``'12.0 GB'`` (decimal units, one decimal; MB below a GB, kB below a MB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def token_budget_argument(text: str) -> int:
    """argparse ``type=`` for ``--budget``: tokens, or argparse's own one-line usage error."""
    try:
        return parse_token_budget(text)
    except BudgetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def memory_budget_argument(text: str) -> int:
    """argparse ``type=`` for ``--memory-budget``: bytes, or argparse's own one-line usage error."""
    try:
        return parse_memory_budget(text)
    except BudgetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
