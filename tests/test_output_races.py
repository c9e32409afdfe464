"""Output files under attack: two writers on one output, ``--overwrite`` racing a running job, a merge racing a
new run, and outputs that are not result logs. No record is lost and no file is truncated."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmlong.jobs.runner import run_job
from mmlong.jobs.shards import JobLogError, ResultLog, ShardedJob

# A job in its own process: items a..e, each written as it is made; before item "c" it says it is ready and
# waits for the test to say go, so the test can act while the job holds a half-written output.
SLOW_JOB = """
import sys, time
from pathlib import Path
from mmlong.jobs.runner import run_job

out, gate = Path(sys.argv[1]), Path(sys.argv[2])

def work(group):
    if group[0] == "c":
        (gate / "ready").touch()
        while not (gate / "go").exists():
            time.sleep(0.02)
    return [{"id": i, "answer": i.upper()} for i in group]

outcome = run_job(list("abcde"), work, out, id_of=lambda i: i, group_of=lambda i: i, progress=False)
print(outcome.computed, len(outcome.records))
"""


def start_slow_job(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    out, gate = tmp_path / "out.jsonl", tmp_path / "gate"
    gate.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_JOB, str(out), str(gate)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (gate / "ready").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job never reached its gate"
        time.sleep(0.02)
    return proc, out, gate


def finish_slow_job(proc: subprocess.Popen, gate: Path) -> str:
    (gate / "go").touch()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return stdout.strip()


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def quick(items, out, **kw):
    return run_job(items, lambda group: [{"id": i, "answer": "late"} for i in group], out, id_of=lambda i: i,
                   group_of=lambda i: i, progress=False, **kw)


@pytest.mark.parametrize("overwrite", [False, True], ids=["second-writer", "overwrite"])
def test_a_second_run_on_a_running_output_is_refused_and_loses_nothing(tmp_path, overwrite):
    proc, out, gate = start_slow_job(tmp_path)
    before = out.read_bytes()
    assert ids(out) == ["a", "b"]
    with pytest.raises(JobLogError, match="another run is writing"):
        quick(list("abxyz"), out, overwrite=overwrite)
    assert out.read_bytes() == before  # not deleted, not truncated, not appended to
    assert finish_slow_job(proc, gate) == "5 5"  # the first run computed and kept every record
    assert ids(out) == list("abcde")
    assert [json.loads(line)["answer"] for line in out.read_text().splitlines()] == list("ABCDE")


def test_a_merge_keeps_the_lock_so_a_new_run_cannot_lose_records(tmp_path, monkeypatch):
    """A new run that starts while a finished run merges is refused (it used to write fsynced records into the
    output that the merge then replaced)."""
    import mmlong.jobs.shards as jobs

    out = tmp_path / "out.jsonl"
    newcomer = (
        "import sys; from mmlong.jobs.runner import run_job\n"
        "from mmlong.jobs.shards import JobLogError\n"
        "try:\n"
        "    run_job(['z'], lambda g: [{'id': i, 'answer': 'Z'} for i in g], sys.argv[1], id_of=lambda i: i,\n"
        "            group_of=lambda i: i, progress=False)\n"
        "    print('wrote')\n"
        "except JobLogError:\n"
        "    print('refused')\n"
    )
    seen = []
    original = jobs.merge_records

    def merge_while_a_new_run_starts(*args, **kwargs):
        merged = original(*args, **kwargs)  # the merge has read the output ...
        seen.append(subprocess.run([sys.executable, "-c", newcomer, str(out)], capture_output=True, text=True,
                                   check=True).stdout.strip())  # ... and a new run starts before it writes
        return merged

    monkeypatch.setattr(jobs, "merge_records", merge_while_a_new_run_starts)
    outcome = quick(list("abc"), out)
    assert seen == ["refused"]
    assert [r["id"] for r in outcome.records] == list("abc")
    assert ids(out) == list("abc")


class TwoRanksInOne:
    """Rank 0 of a two-rank run whose other rank already finished (its part file is on disk)."""

    rank, world_size, is_main, is_distributed = 0, 2, True, True

    def barrier(self):
        pass


def test_a_distributed_merge_is_locked_against_a_one_process_run(tmp_path, monkeypatch):
    import mmlong.jobs.shards as jobs

    out = tmp_path / "out.jsonl"
    with ResultLog(jobs.part_path(out, 1, 2)) as part:
        part.append({"id": "b", "answer": "B"})
    job = ShardedJob(out, dist=TwoRanksInOne())
    with job:
        job.write({"id": "a", "answer": "A"})
        with pytest.raises(JobLogError, match="another run is writing"):
            ResultLog(out).open()  # a one-process run on the same output, mid-run
        original = jobs.merge_records
        refused = []

        def racing(*args, **kwargs):
            merged = original(*args, **kwargs)
            try:
                ResultLog(out).open().close()
            except JobLogError:
                refused.append(True)
            return merged

        monkeypatch.setattr(jobs, "merge_records", racing)
        merged = job.finish(order=["a", "b"])
    assert refused == [True]
    assert [r["id"] for r in merged] == ["a", "b"] and ids(out) == ["a", "b"]


def test_an_output_that_is_not_a_result_log_is_refused_before_a_byte_changes(tmp_path):
    video = tmp_path / "clip.mp4"
    content = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400 + b"\nno newline at the end"
    video.write_bytes(content)
    for overwrite in (False, True):
        with pytest.raises(JobLogError, match="not a result log"):
            quick(["a"], video, overwrite=overwrite)
        assert video.read_bytes() == content
    text = tmp_path / "notes.jsonl"
    text.write_text('{"id": "a"}\nplain words, not a record\n{"id": "b", "ans')
    before = text.read_bytes()
    with pytest.raises(JobLogError, match="line 2 is not a JSON record"):
        ResultLog(text).open()
    assert text.read_bytes() == before
    assert not (tmp_path / "notes.jsonl.lock").exists()  # the refused open let its lock go


def test_a_torn_log_is_still_a_result_log(tmp_path):
    from mmlong.jobs.log import check_result_log

    log = tmp_path / "out.jsonl"
    log.write_bytes(b'{"id": "a"}\n{"id": "b", "ans')
    check_result_log(log)  # a killed writer's tail: accepted, repaired on open
    with ResultLog(log) as opened:
        assert opened.done_ids == {"a"}
    deep = tmp_path / "deep.jsonl"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(JobLogError, match="line 1"):  # not a RecursionError
        check_result_log(deep)


@pytest.mark.parametrize("device", ["/dev/full", "/dev/zero", "/dev/null"])
def test_a_device_is_not_a_result_log(device):
    from mmlong.jobs.log import check_result_log

    if not Path(device).exists():
        pytest.skip(f"{device} is missing here")
    with pytest.raises(JobLogError, match="not a regular file"):
        check_result_log(device)
