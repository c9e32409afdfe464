"""Scale-out: rank detection, and 2-process torchrun runs (gloo on CPU) that merge into the one-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmlong.errors import ConfigError
from mmlong.jobs.distributed import DistContext, init_distributed

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
    # torchrun's own module under this Python: the ranks run this interpreter (a venv copied elsewhere keeps the
    # torchrun script's original interpreter line)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], cwd=cwd,
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


def test_docstring_examples():
    import doctest

    import mmlong.jobs.distributed

    result = doctest.testmod(mmlong.jobs.distributed)
    assert result.attempted >= 3 and result.failed == 0


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
from mmlong.jobs.distributed import init_distributed
from mmlong.jobs.shards import ShardedJob

items = [(f"q{i}", f"video{i % 5}") for i in range(13)]
dist = init_distributed("cpu")
with ShardedJob(sys.argv[1], dist=dist) as job:
    written = []
    for group in job.shard(items, group_of=lambda item: item[1]):
        for item_id, video in group:
            if not job.is_done(item_id):
                job.write({"id": item_id, "video": video, "rank": dist.rank})
                written.append(item_id)
    everyone = dist.gather(written)
    merged = job.finish(order=[i for i, _ in items])
if dist.is_main:
    print(json.dumps({"written": everyone, "ids": [r["id"] for r in merged]}))
dist.close()
"""


def test_two_ranks_resume_their_parts_and_merge_in_input_order(tmp_path):
    from mmlong.jobs.shards import part_path, shard_items

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB_SCRIPT))
    out = tmp_path / "out.jsonl"
    # an earlier 2-rank run killed part-way: each rank's first record on disk, rank 1 torn mid-write
    items = [(f"q{i}", f"video{i % 5}") for i in range(13)]
    firsts = [shard_items(items, rank, 2, group_of=lambda item: item[1])[0][0] for rank in (0, 1)]
    for rank, (item_id, video) in enumerate(firsts):
        line = json.dumps({"id": item_id, "video": video, "rank": rank, "before": True}) + "\n"
        part_path(out, rank, 2).write_text(line + ('{"id": "q9", "vid' if rank else ""))
    part_path(out, 0, 3).write_text(json.dumps({"id": "q12", "video": "video2", "rank": 0, "before": True}) + "\n")
    proc = torchrun(str(script), str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ids"] == [f"q{i}" for i in range(13)]
    done_before = {firsts[0][0], firsts[1][0], "q12"}
    written = result["written"]
    assert sorted(written[0] + written[1]) == sorted({f"q{i}" for i in range(13)} - done_before)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == result["ids"]
    assert {r["id"] for r in records if r.get("before")} == done_before
    for record in records:
        if not record.get("before"):  # a video's questions stayed on one rank
            assert record["id"] in written[record["rank"]]
            assert {r["rank"] for r in records if r["video"] == record["video"] and not r.get("before")} == \
                {record["rank"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.py", "out.jsonl"]


@pytest.mark.slow
def test_torchrun_batch_merges_to_the_single_process_answers(tmp_path):
    """Two CPU ranks (gloo) with the real offline pipeline: the merged file equals a one-process run."""
    from mmlong.apps.batch import read_questions, run_batch
    from mmlong.jobs.shards import part_path
    from tests.test_batch import PIPELINE_FLAGS, comparable, offline_pipeline, write_questions

    questions = write_questions(tmp_path)
    single = tmp_path / "single.jsonl"
    run_batch(read_questions(questions), offline_pipeline(tmp_path / "features"), single, progress=False)
    expected = [json.loads(line) for line in single.read_text().splitlines()]
    out = tmp_path / "sharded.jsonl"
    # rank 1 of an earlier 2-rank run had answered g2: resumed per part, not asked again
    (g2,) = [r for r in expected if r["id"] == "g2"]
    part_path(out, 1, 2).write_text(json.dumps(g2) + "\n")
    proc = torchrun("-m", "mmlong", "batch", str(questions), "--out", str(out), "--no-progress",
                    "--cache-dir", str(tmp_path / "rank-features"), *PIPELINE_FLAGS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]  # every rank finished its share: the summary says what failed
    assert "ChildFailedError" not in proc.stderr and "4 item(s) failed" in proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [comparable(r) for r in records] == [comparable(r) for r in expected]
    summary = json.loads((tmp_path / "sharded.summary.json").read_text())
    assert (summary["world_size"], summary["answered"], summary["failed"]) == (2, 4, 4)
    assert (summary["done_before"], summary["computed"]) == (1, 7)
    assert "batch: 8 questions: 4 answered, 4 failed" in proc.stderr
    assert not list(tmp_path.glob("sharded.jsonl.*"))
