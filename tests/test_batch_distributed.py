"""Scale-out: rank detection, and 2-process torchrun runs (gloo on CPU) that merge into the one-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmlong.distributed import DistContext, init_distributed
from mmlong.errors import ConfigError

TORCHRUN = Path(sys.executable).with_name("torchrun")
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE",
              "GROUP_RANK", "TORCHELASTIC_RUN_ID")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    env["OMP_NUM_THREADS"] = "1"
    return env


def torchrun(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed beside this Python")
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", *args], cwd=cwd,
                          env=clean_env(), capture_output=True, text=True, timeout=timeout)


def test_rank_comes_from_the_launcher_environment():
    one = DistContext.from_env({})
    assert (one.rank, one.world_size, one.is_main, one.is_distributed) == (0, 1, True, False)
    ctx = DistContext.from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (5, 8, 1, False)
    assert ctx.device_for("cuda") == "cuda:1" and ctx.device_for("cpu") == "cpu"
    assert ctx.device_for("cuda:3") == "cuda:3"
    assert one.device_for("cuda") == "cuda"
    with pytest.raises(ConfigError, match="RANK=4 and WORLD_SIZE=2"):
        DistContext.from_env({"RANK": "4", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        DistContext.from_env({"WORLD_SIZE": "two"})


def test_one_process_needs_no_process_group():
    ctx = init_distributed("cpu", env={})
    assert ctx.backend is None and ctx.world_size == 1
    ctx.barrier()
    assert ctx.broadcast(7) == 7 and ctx.gather("x") == ["x"]
    ctx.close()
    with pytest.raises(ConfigError, match="MASTER_ADDR and MASTER_PORT not set"):
        init_distributed("cpu", env={"RANK": "0", "WORLD_SIZE": "2"})


JOB_SCRIPT = """
import json, sys
from mmlong.distributed import init_distributed
from mmlong.jobs import ShardedJob

out, kill_after = sys.argv[1], int(sys.argv[2])
items = [(f"q{i}", f"video{i % 5}") for i in range(13)]
dist = init_distributed("cpu")
with ShardedJob(out, dist=dist) as job:
    written = 0
    for group in job.shard(items, group_of=lambda item: item[1]):
        for item_id, video in group:
            if not job.is_done(item_id):
                if written == kill_after:
                    raise SystemExit(3)  # this rank stops early, as if killed
                job.write({"id": item_id, "video": video, "rank": dist.rank})
                written += 1
    counts = dist.gather(written)
    merged = job.finish(order=[i for i, _ in items])
if dist.is_main:
    print(json.dumps({"counts": counts, "ids": [r["id"] for r in merged]}))
dist.close()
"""


def test_two_ranks_write_parts_resume_and_merge_in_input_order(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB_SCRIPT))
    out = tmp_path / "out.jsonl"
    first = torchrun(str(script), str(out), "2", cwd=tmp_path)
    assert first.returncode != 0  # both ranks stopped after two records each
    parts = sorted(p.name for p in tmp_path.glob("out.jsonl.rank*-of-2"))
    assert parts == ["out.jsonl.rank0-of-2", "out.jsonl.rank1-of-2"]
    assert [len(p.read_text().splitlines()) for p in sorted(tmp_path.glob("out.jsonl.rank*"))] == [2, 2]
    second = torchrun(str(script), str(out), "-1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["ids"] == [f"q{i}" for i in range(13)]
    assert sum(result["counts"]) == 13 - 4 and min(result["counts"]) > 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == result["ids"]
    for record in records:  # a video's questions stayed on one rank
        same_video = {r["rank"] for r in records if r["video"] == record["video"]}
        assert len(same_video) == 1
    assert not list(tmp_path.glob("out.jsonl.rank*"))
