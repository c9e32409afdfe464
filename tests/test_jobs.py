"""The job machinery on plain records: torn-line repair, exactly-once, resume, sharding and merging parts."""

from __future__ import annotations

import doctest
import json
import os
import stat
import subprocess
import sys

import pytest

from mmlong.jobs.log import DuplicateRecordError, JobLogError, ResultLog, merge_records, read_records, repair_torn_tail
from mmlong.jobs.shards import existing_parts, finished_ids, merge_outputs, part_path, shard_groups, shard_items


def lines_of(path):
    return path.read_bytes().decode().splitlines()


@pytest.mark.parametrize("module, least",
                         [("mmlong.jobs.shards", 8), ("mmlong.jobs.log", 1), ("mmlong.jobs.runner", 5)])
def test_docstring_examples(module, least):
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted >= least and result.failed == 0


def test_repair_truncates_a_torn_line(tmp_path):
    log = tmp_path / "out.jsonl"
    log.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "answ')
    assert repair_torn_tail(log) == "truncated"
    assert log.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'
    assert repair_torn_tail(log) == "ok"


def test_repair_completes_a_whole_record_missing_its_newline(tmp_path):
    log = tmp_path / "out.jsonl"
    log.write_bytes(b'{"id": "a"}\n{"id": "b", "x": [1, {"y": 2}]}')
    assert repair_torn_tail(log) == "completed"
    assert [r["id"] for r in read_records(log)] == ["a", "b"]


def test_repair_of_a_single_torn_line_empties_the_file(tmp_path):
    log = tmp_path / "out.jsonl"
    log.write_bytes(b'{"id": "a", "ans')
    assert repair_torn_tail(log) == "truncated"
    assert log.read_bytes() == b""


def test_repair_handles_tails_longer_than_one_read_block(tmp_path):
    log = tmp_path / "out.jsonl"
    head = b'{"id": "a"}\n'
    log.write_bytes(head + b'{"id": "b", "text": "' + b"x" * 200_000)
    assert repair_torn_tail(log) == "truncated"
    assert log.read_bytes() == head


def test_read_records_ignores_unterminated_tail_and_rejects_damaged_lines(tmp_path):
    log = tmp_path / "out.jsonl"
    log.write_bytes(b'{"id": 1}\n{"id": 2}\n{"id"')
    assert [r["id"] for r in read_records(log)] == [1, 2]
    log.write_bytes(b'{"id": 1}\nnot json\n{"id": 3}\n')
    with pytest.raises(JobLogError, match=r"out\.jsonl: line 2 is not a result record"):
        read_records(log)
    log.write_bytes(b'{"no_id": 1}\n')
    with pytest.raises(JobLogError, match="line 1"):
        read_records(log)
    assert read_records(tmp_path / "missing.jsonl") == []


def test_log_appends_whole_lines_and_refuses_a_second_record_for_an_id(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResultLog(path) as log:
        log.append({"id": "a", "answer": "x"})
        log.append({"id": 7, "answer": "y"})
        assert lines_of(path) == ['{"id": "a", "answer": "x"}', '{"id": 7, "answer": "y"}']
        with pytest.raises(DuplicateRecordError, match="'a'"):
            log.append({"id": "a", "answer": "z"})
        with pytest.raises(DuplicateRecordError, match="'7'"):
            log.append({"id": "7", "answer": "z"})  # ids compare as strings
    assert len(lines_of(path)) == 2
    with ResultLog(path) as log:  # resumed: both ids are done and still refused
        assert log.done_ids == {"a", "7"}
        with pytest.raises(DuplicateRecordError):
            log.append({"id": "a"})
    assert not (tmp_path / "out.jsonl.lock").exists()


def test_error_records_are_retried_unless_asked_not_to(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "answer": "x"}\n{"id": "b", "error": "v.mp4: broken"}\n')
    with ResultLog(path, retry_errors=False) as log:
        assert log.done_ids == {"a", "b"}
    assert len(lines_of(path)) == 2
    with ResultLog(path) as log:
        assert log.done_ids == {"a"}
        assert lines_of(path) == ['{"id": "a", "answer": "x"}']  # rewritten without the error
        log.append({"id": "b", "answer": "y"})
    assert [json.loads(line)["id"] for line in lines_of(path)] == ["a", "b"]


def test_duplicate_lines_in_a_log_are_collapsed_keeping_the_answer(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "answer": "x"}\n{"id": "a", "error": "later failure"}\n{"id": "b", "answer": 1}\n')
    with ResultLog(path, retry_errors=False) as log:
        assert log.records["a"] == {"id": "a", "answer": "x"}
    assert [json.loads(line)["id"] for line in lines_of(path)] == ["a", "b"]


def test_overwrite_starts_again(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "answer": "x"}\n')
    with ResultLog(path, overwrite=True) as log:
        assert len(log) == 0
    assert path.read_bytes() == b""


def test_a_second_writer_is_refused_while_the_first_holds_the_log(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResultLog(path):
        with pytest.raises(JobLogError, match="another run is writing"):
            ResultLog(path).open()
        code = (
            "import sys; from mmlong.jobs.log import ResultLog, JobLogError\n"
            "try:\n    ResultLog(sys.argv[1]).open()\nexcept JobLogError as e:\n    print('refused')\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "refused"
    with ResultLog(path) as log:  # free again once closed
        assert len(log) == 0


def test_lock_is_released_when_the_writer_is_killed(tmp_path):
    path = tmp_path / "out.jsonl"
    code = (
        "import os, sys, signal; from mmlong.jobs.log import ResultLog\n"
        "log = ResultLog(sys.argv[1]).open(); log.append({'id': 'a'})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)])
    assert proc.returncode == -9
    with ResultLog(path) as log:  # stale lock file, but no holder: the log opens
        assert log.done_ids == {"a"}


def test_shard_groups_is_balanced_deterministic_and_total():
    sizes = [4, 1, 1, 3, 2, 2, 5, 1]
    plan = shard_groups(sizes, 3)
    assert plan == shard_groups(sizes, 3)
    loads = [sum(s for s, r in zip(sizes, plan) if r == rank) for rank in range(3)]
    assert sorted(loads) == [6, 6, 7]
    assert shard_groups(sizes, 1) == [0] * len(sizes)
    assert sorted(shard_groups([1, 1], 4)) == [0, 1]  # more ranks than groups: some ranks idle
    with pytest.raises(ValueError):
        shard_groups(sizes, 0)


def test_shard_items_keeps_a_group_on_one_rank_and_covers_everything_once():
    items = [{"id": i, "video": f"v{i % 4}.mp4"} for i in range(11)]
    seen = []
    for rank in range(3):
        for group in shard_items(items, rank, 3, group_of=lambda it: it["video"]):
            assert len({it["video"] for it in group}) == 1
            assert [it["id"] for it in group] == sorted(it["id"] for it in group)
            seen.extend(it["id"] for it in group)
    assert sorted(seen) == list(range(11))


def test_merge_records_prefers_answers_then_newest_and_follows_order():
    old = [{"id": "a", "error": "e1"}, {"id": "b", "answer": 1}, {"id": "c", "error": "e2"}]
    new = [{"id": "a", "answer": 2}, {"id": "b", "error": "e3"}, {"id": "c", "error": "e4"}, {"id": "z", "x": 0}]
    merged = merge_records([old, new], order=["c", "b", "a"])
    assert merged == [{"id": "c", "error": "e4"}, {"id": "b", "answer": 1}, {"id": "a", "answer": 2},
                      {"id": "z", "x": 0}]


def test_merge_outputs_joins_output_and_parts_of_any_world_size(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "q1", "answer": "old"}\n{"id": "q4", "error": "bad"}\n')
    part_path(out, 0, 2).write_text('{"id": "q2", "answer": "b"}\n{"id": "q4", "answer": "fixed"}\n')
    part_path(out, 1, 2).write_bytes(b'{"id": "q3", "answer": "c"}\n{"id": "q5", "ans')  # killed mid-write
    part_path(out, 0, 3).write_text('{"id": "q5", "answer": "e"}\n')  # left by an earlier 3-rank run
    (tmp_path / "out.jsonl.rank0-of-2.lock").write_text("")
    assert existing_parts(out) == [part_path(out, 0, 2), part_path(out, 1, 2), part_path(out, 0, 3)]
    assert finished_ids(out) == {"q1", "q2", "q3", "q4", "q5"}
    assert finished_ids(tmp_path / "none.jsonl") == set()
    merged = merge_outputs(out, order=["q5", "q4", "q3", "q2", "q1"])
    assert [(r["id"], r.get("answer")) for r in merged] == [
        ("q5", "e"), ("q4", "fixed"), ("q3", "c"), ("q2", "b"), ("q1", "old")]
    assert [json.loads(line) for line in lines_of(out)] == merged
    assert existing_parts(out) == []
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl", "out.jsonl.rank0-of-2.lock"]


def test_sharded_job_resumes_and_writes_each_id_once(tmp_path):
    from mmlong.jobs.shards import ShardedJob

    out = tmp_path / "out.jsonl"
    items = [(f"q{i}", f"v{i % 3}.mp4") for i in range(7)]
    order = [i for i, _ in items]
    out.write_text('{"id": "q4", "answer": "before"}\n{"id": "q0", "error": "v0.mp4: broken"}\n')
    part_path(out, 1, 2).write_text('{"id": "q2", "answer": "from a 2-rank run"}\n')
    written = []
    with ShardedJob(out) as job:
        assert job.log_path == out
        for group in job.shard(items, group_of=lambda item: item[1]):
            for item_id, video in group:
                if not job.is_done(item_id):
                    job.write({"id": item_id, "answer": video})
                    written.append(item_id)
        with pytest.raises(DuplicateRecordError):
            job.write({"id": "q2", "answer": "again"})
        merged = job.finish(order=order)
    assert sorted(written) == ["q0", "q1", "q3", "q5", "q6"]  # the error on q0 was retried
    assert [r["id"] for r in merged] == order
    assert {r["id"]: r["answer"] for r in merged}["q4"] == "before"
    assert [json.loads(line)["id"] for line in lines_of(out)] == order
    assert existing_parts(out) == []
    with ShardedJob(out, overwrite=True) as job:
        assert not job.is_done("q1")
        assert job.finish() == []


def test_run_job_resumes_retries_errors_and_checks_the_saved_pipeline(tmp_path):
    """The one job runner of batch and eval: records once per id, errors retried, the pipeline pinned."""
    from mmlong.config.resolve import resolve
    from mmlong.errors import ConfigError
    from mmlong.jobs.runner import run_job, sidecar

    out = tmp_path / "out.jsonl"
    items = [{"id": f"q{n}", "video": f"v{n % 2}.mp4"} for n in range(5)]
    calls = []

    def work(group, fail=("q3",)):
        calls.append([i["id"] for i in group])
        return [{"id": i["id"], "error": "broken"} if i["id"] in fail else {"id": i["id"], "answer": i["video"]}
                for i in group]

    config = resolve(preset="offline", flags={"sample": "uniform:4"})
    kwargs = dict(id_of=lambda i: i["id"], group_of=lambda i: i["video"], progress=False, config=config,
                  config_path=sidecar(out, ".config.yaml"))
    first = run_job(items, work, out, **kwargs)
    assert calls == [["q0", "q2", "q4"], ["q1", "q3"]]  # one call per video
    assert [r["id"] for r in first.records] == ["q0", "q1", "q2", "q3", "q4"]
    assert (first.answered, len(first.failed), first.computed, first.done_before) == (4, 1, 5, 0)
    assert resolve(yaml=sidecar(out, ".config.yaml")) == config
    calls.clear()
    second = run_job(items, lambda g: work(g, fail=()), out, **kwargs)  # resume: only the error is retried
    assert calls == [["q3"]] and second.done_before == 4 and second.answered == 5
    assert [json.loads(line)["id"] for line in lines_of(out)] == ["q0", "q1", "q2", "q3", "q4"]
    with pytest.raises(ConfigError, match="sampler.options.num_frames: 4 -> 8"):
        run_job(items, work, out, **{**kwargs, "config": resolve(preset="offline", flags={"sample": "uniform:8"})})
    with pytest.raises(ValueError, match="work gave 0 records for 1 items"):
        run_job([{"id": "new", "video": "x"}], lambda g: [], out, **kwargs)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomically_written_files_follow_the_users_umask(tmp_path, umask, mode):
    from mmlong.cache import atomic_write
    from mmlong.jobs.log import write_records_atomic

    old = os.umask(umask)
    try:
        write_records_atomic(tmp_path / "answers.jsonl", [{"id": "a", "prediction": "x"}])
        atomic_write(tmp_path / "sub" / "summary.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "answers.jsonl").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "sub" / "summary.json").stat().st_mode) == mode


def test_a_rank_that_finished_its_share_exits_0_and_one_process_reports_failures():
    from mmlong.jobs.distributed import DistContext

    single = DistContext.from_env({})
    ranks = [DistContext.from_env({"RANK": str(r), "WORLD_SIZE": "2"}) for r in range(2)]
    assert (single.exit_status(0), single.exit_status(3)) == (0, 1)
    assert [rank.exit_status(3) for rank in ranks] == [0, 0]
