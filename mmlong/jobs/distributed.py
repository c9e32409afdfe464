"""Which process am I in a multi-process run, and the few collectives a sharded job needs.

Launchers (``torchrun --nproc-per-node N``, ``accelerate launch``, and ``torchrun --nnodes`` across machines)
set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them the run is one
process and nothing is initialised. The process group uses gloo on CPU and nccl when the pipeline runs on CUDA.

>>> ctx = DistContext.from_env({})
>>> ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed
(0, 1, True, False)
>>> DistContext.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}).device_for("cuda")
'cuda:1'
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Mapping

from mmlong.errors import ConfigError

#: how long a rank waits for the others at a barrier: a sharded batch may keep one rank busy for hours
#: after another finished, so this is long; a launcher still tears every rank down when one dies.
DEFAULT_TIMEOUT_S = 7 * 24 * 3600.0


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> "DistContext":
        """Read the launcher's variables (``os.environ`` by default); no process group is created."""
        env = os.environ if env is None else env
        world = _env_int(env, "WORLD_SIZE", 1)
        rank = _env_int(env, "RANK", 0)
        local = _env_int(env, "LOCAL_RANK", rank)
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"RANK={rank} and WORLD_SIZE={world} do not fit; start the command with torchrun "
                              "or accelerate launch, or unset them")
        return DistContext(rank=rank, world_size=world, local_rank=local)

    def exit_status(self, failed_items: int) -> int:
        """The exit status of a run that finished with ``failed_items`` error records: 1 in one process (a
        script sees it), 0 under a launcher (every rank finished its share; the merged summary says what failed,
        and torchrun does not print a ChildFailedError over a correct merge)."""
        return 1 if failed_items and not self.is_distributed else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def device_for(self, device: str) -> str:
        """The device this rank should use: a bare ``cuda`` becomes ``cuda:<local_rank>`` when distributed."""
        if self.is_distributed and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    # ------------------------------------------------------------------ collectives (no-ops in one process)
    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.backend is None:
            return
        import torch.distributed as dist

        if self.backend == "nccl":
            import torch

            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()

    def broadcast(self, value: Any, src: int = 0) -> Any:
        """``value`` from rank ``src`` on every rank (a picklable object)."""
        if self.backend is None:
            return value
        import torch.distributed as dist

        box = [value if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """``value`` from every rank, in rank order, on every rank (a picklable object)."""
        if self.backend is None:
            return [value]
        import torch.distributed as dist

        box: list[Any] = [None] * self.world_size
        dist.all_gather_object(box, value)
        return box

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.backend is None:
            return
        import torch.distributed as dist

        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.backend = None


def init_distributed(device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S,
                     env: Mapping[str, str] | None = None) -> DistContext:
    """Join the launcher's process group (gloo on CPU, nccl for a CUDA device); one process: nothing to join.

    Returns a :class:`DistContext`; call :meth:`DistContext.close` at the end. When a process group already
    exists (the caller made one), it is used as it is and not destroyed by ``close``.
    """
    ctx = DistContext.from_env(env)
    if not ctx.is_distributed:
        return ctx
    import torch
    import torch.distributed as dist

    env = os.environ if env is None else env
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={ctx.world_size} but {' and '.join(missing)} not set; start the command "
                          "with torchrun or accelerate launch")
    if dist.is_initialized():
        ctx.backend = str(dist.get_backend())
        return ctx
    use_cuda = device.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} but CUDA is not available on this machine")
        torch.cuda.set_device(ctx.local_rank if device == "cuda" else torch.device(device))
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    ctx.backend, ctx.owns_group = backend, True
    return ctx
