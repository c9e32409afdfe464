"""The command line makes OpenMP threads wait passively, which only works before torch is imported."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=environ,
                         check=True)
    return out.stdout.strip()


def test_importing_the_command_line_leaves_torch_unloaded():
    code = "import sys, mmlong, mmlong.apps.cli; print('torch' in sys.modules, mmlong.Query.__name__)"
    assert _run(code) == "False Query"  # mmlong.Query loads the types (and torch) only when asked for


def test_main_sets_passive_waiting_before_torch_loads():
    code = ("import os, mmlong.apps.cli;"
            "from mmlong.cpu_threads import wait_passively; first = wait_passively(); second = wait_passively();"
            "import torch; print(first, second, os.environ['OMP_WAIT_POLICY'], wait_passively())")
    assert _run(code) == "True False PASSIVE False"


def test_a_policy_the_user_chose_is_kept_and_a_late_call_does_nothing():
    code = ("import os; from mmlong.cpu_threads import wait_passively;"
            "print(wait_passively(), os.environ['OMP_WAIT_POLICY'])")
    assert _run(code, OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"
    late = ("import os, torch; from mmlong.cpu_threads import wait_passively;"
            "print(wait_passively(), 'OMP_WAIT_POLICY' in os.environ)")
    assert _run(late) == "False False"


def test_the_cli_entry_point_calls_it():
    code = ("import os, sys, mmlong.apps.cli as cli;"
            "sys.argv = ['mmlong', '--version'];\ntry:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    assert _run(code).splitlines() == ["mmlong 0.1.0", "PASSIVE"]
