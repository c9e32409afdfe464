"""Every "promised exit 2" case: one line ``mmlong: error: ...``, exit status 2, no traceback, nothing run.

Each row is a command the attack run saw end in a traceback, an internal error (exit 3) or silent acceptance.
They run in this process up to the refusal, which always comes before a model loads or a video is decoded.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlong.apps.cli import main
from mmlong.validate import number_argument
from tests.test_input_validation import assert_one_error_line


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``main(argv)``'s status, stdout, stderr; a usage error (argparse exits) counts as its exit status."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.media import make_test_video

    folder = tmp_path_factory.mktemp("exit2")
    make_test_video(folder / "clip.mp4", num_frames=20, fps=10, size=(64, 48))
    (folder / "list").mkdir()
    (folder / "list" / "config.json").write_text("[1, 2]")
    (folder / "nested").mkdir()
    (folder / "nested" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "deep.jsonl").write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}\n")
    (folder / "afile").write_text("not a folder\n")
    return folder


CASES = [
    # (argv with {dir} for the fixture folder, words the one line must hold)
    (["ask", "{dir}/clip.mp4", "q", "--memory-budget", "1e400MB"], ["--memory-budget", "too large"]),
    (["ask", "{dir}/clip.mp4", "q", "--budget", "12GB"], ["--budget", "pass it as --memory-budget 12GB"]),
    (["ask", "{dir}/clip.mp4", "q", "--budget", "infGB"], ["--budget"]),
    (["ask", "{dir}/clip.mp4", "q", "--memory-budget", "1KB"], ["--memory-budget", "'socratic' is not one"]),
    (["ask", "{dir}/clip.mp4", "q", "--device", "mps"], ["--device mps"]),
    (["ask", "{dir}/clip.mp4", "q", "--device", "tpu"], ["unknown device"]),
    (["ask", "{dir}/clip.mp4", "q", "--model", "{dir}/list"], ["config.json holds a list"]),
    (["ask", "{dir}/clip.mp4", "q", "--model", "{dir}/nested"], ["config.json", "nested deeper"]),
    (["ask", "{dir}/clip.mp4", "q", "--cache-dir", "{dir}/afile"], ["--cache-dir", "is a file"]),
    (["ask", "{dir}/clip.mp4", "q", "--max-side", "0"], ["--max-side", ">= 1"]),
    (["eval", "mlvu", "--data", "{dir}/deep.json", "--out", "{dir}/run1"], ["deep.json", "nested deeper"]),
    (["eval", "mlvu", "--data", "{dir}/deep.jsonl", "--out", "{dir}/run2"], ["deep.jsonl", "nested deeper"]),
    (["demo", "--port", "99999"], ["--port", "1 to 65535"]),
    (["demo", "--port", "-1"], ["--port"]),
    (["demo", "--max-upload-mb", "nan"], ["--max-upload-mb", "finite"]),
    (["demo", "--max-upload-mb", "inf"], ["--max-upload-mb"]),
    (["demo", "--max-duration", "-5"], ["--max-duration"]),
    (["eval", "niavh", "make", "{dir}/n1", "--lengths", "nan"], ["--lengths", "finite"]),
    (["eval", "niavh", "make", "{dir}/n2", "--lengths", "inf"], ["--lengths"]),
    (["eval", "niavh", "make", "{dir}/n3", "--needle-seconds", "-1"], ["--needle-seconds"]),
    (["eval", "niavh", "make", "{dir}/n4", "--max-side", "0"], ["--max-side"]),
    (["eval", "niavh", "make", "{dir}/n5", "--depths", "150"], ["--depths", "0 to 100"]),
    (["bench", "make-video", "{dir}/v.mp4", "--minutes", "nan"], ["--minutes", "finite"]),
    (["bench", "make-video", "{dir}/v.mp4", "--fps", "0"], ["--fps"]),
    (["plan", "{dir}/clip.mp4", "--tflops", "nan"], ["--tflops"]),
    (["plan", "{dir}/clip.mp4", "--tflops", "0"], ["--tflops"]),
    (["plan", "{dir}/clip.mp4", "--min-pixels", "-1"], ["--min-pixels"]),
    (["plan", "{dir}/clip.mp4", "--compress", "dycoke-kv,framefusion"], ["only in-LLM step", "framefusion"]),
    (["plan", "{dir}/clip.mp4", "--compress", "pyramiddrop,pyramiddrop"], ["given twice"]),
    (["bench", "prefill", "--size", "tiny", "--compress", "dycoke-kv,framefusion"], ["own hooks"]),
    (["bench", "prefill", "--size", "tiny", "--compress", "pyramiddrop,pyramiddrop"], ["given twice"]),
    (["ask", "{dir}/clip.mp4", "q", "--sample", "uniform:"], ["nothing after it"]),
    (["ask", "{dir}/clip.mp4", ""], ["the question is empty"]),
    (["ask", "{dir}/clip.mp4", "q", "--options", "", ""], ["option 1 is empty"]),
    (["batch", "{dir}/q.jsonl", "--out", ""], ["--out", "must be a file name"]),
]


@pytest.mark.parametrize("argv, needles", CASES, ids=[" ".join(a[:2] + a[-2:]) for a, _ in CASES])
def test_promised_exit_2_is_one_line(capsys, files, monkeypatch, argv, needles):
    monkeypatch.setenv("MMLONG_CACHE_DIR", str(files / "cache"))
    status, out, err = run_cli(capsys, *[a.replace("{dir}", str(files)) for a in argv])
    assert_one_error_line(status, err, *needles)


def test_a_cache_env_that_is_a_file_is_one_line(capsys, files, monkeypatch):
    monkeypatch.setenv("MMLONG_CACHE_DIR", str(files / "afile"))
    status, _, err = run_cli(capsys, "ask", str(files / "clip.mp4"), "q", "--sample", "uniform:2")
    assert_one_error_line(status, err, "$MMLONG_CACHE_DIR", "is a file")


@settings(max_examples=80, deadline=None)
@given(text=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6),
                      st.integers(-10**30, 10**30).map(str)))
def test_any_number_flag_text_is_in_range_or_refused(text):
    import argparse

    parse = number_argument(float, 0, 1000, above=True)
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as err:
        assert "\n" not in str(err) and repr(text) in str(err)
        return
    assert math.isfinite(value) and 0 < value <= 1000


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet="0123456789.eE+-kKmMgGiBbTt nafi", max_size=12))
def test_any_budget_text_is_a_budget_or_a_one_line_refusal(text):
    """--budget (tokens) and --memory-budget (a size): any text is a value of the flag's type or one line."""
    from mmlong.config.budget import BudgetError, parse_memory_budget, parse_token_budget

    try:
        assert parse_token_budget(text) >= 1
    except BudgetError as err:
        assert "\n" not in str(err)
    try:
        assert 1 <= parse_memory_budget(text) < 2**63
    except BudgetError as err:
        assert "\n" not in str(err)
