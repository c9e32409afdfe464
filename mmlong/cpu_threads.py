"""How CPU worker threads wait: passively, so idle OpenMP threads do not burn the cores others need.

PyTorch's CPU kernels (and MKL under them) run on an OpenMP thread team. By default an OpenMP worker that has
finished its share spins for a while before it sleeps. On a machine whose cores are all busy (other processes,
or this one's own decoder and OCR threads) the spinning thread takes the core from the very thread it waits for:
an hour's 96 px scan with EfficientNet-Lite0 measured 130-145 CPU s on two threads against 10-18 CPU s with
``OMP_WAIT_POLICY=PASSIVE`` (same wall time or better), and Gemma's answer 36 s against under 5 s.

The policy is read once, when the OpenMP runtime loads (on ``import torch``), so it is set from the command
line's entry point before anything imports torch; a value the user exported is left as it is.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def wait_passively() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process when it can still take effect: the variable is unset and
    torch is not imported yet. Returns True when it was set here."""
    if WAIT_POLICY in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY] = "PASSIVE"
    return True
