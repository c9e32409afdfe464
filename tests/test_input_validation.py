"""Every input checked at the door: the hostile specs, numbers, paths and configs of issue 14, each one line, exit 2.

Each case runs the real command (``mmlong frames`` or ``mmlong ask`` up to the point where the input is used) and
asserts the one error line that names the input, and that nothing was written or allocated on the way.
"""

from __future__ import annotations

import resource

import numpy as np
import pytest

from mmlong.apps.cli import main
from mmlong.errors import ConfigError
from mmlong.sampling.basic import build_sampler
from mmlong.types import VideoMeta


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(status: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("mmlong: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def clip(make_video):
    return make_video("clip.mp4", num_frames=30, fps=10, size=(64, 48))


@pytest.mark.parametrize("spec, needle", [
    ("fps:nan", "finite"),
    ("fps:inf", "finite"),
    ("fps:-inf", "finite"),
    ("fps:0", "positive"),
    ("window:nan-5+uniform:4", "not a finite number"),
    ("window:0-nan+uniform:4", "not a finite number"),
    ("window:5-1e999+uniform:4", "not a finite number"),
    ("window:abc-5+uniform:4", "bad time"),
    ("uniform:1.5", "expected int"),
    ("uniform:0", "num_frames must be >= 1"),
    ("fps:1,max_frames=nan", "max_frames"),
    ("unifrom:4", "did you mean 'uniform'"),
    ("uniform:4,bogus=1", "has no option 'bogus'"),
])
def test_bad_sampler_specs_are_one_line(capsys, clip, tmp_path, spec, needle):
    out = tmp_path / "sheet.png"
    status, _, err = run_cli(capsys, "frames", clip, "--sample", spec, "--out", str(out))
    assert_one_error_line(status, err, repr(spec), needle)
    assert not out.exists()


@pytest.mark.parametrize("fps", ["1e308", "1e12", "99999999"])
def test_absurd_frame_rates_never_ask_for_more_frames_than_the_video_has(capsys, clip, tmp_path, fps):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status, out, err = run_cli(capsys, "frames", clip, "--sample", f"fps:{fps}", "--out", str(tmp_path / "s.png"))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert status == 0, err
    assert "wrote" in out and "(30 frames of 30," in out  # every frame, once: the video has no more
    assert grown_mb < 500


def test_samplers_are_bounded_by_the_video_whatever_the_spec_says():
    meta = VideoMeta("v.mp4", duration=3600.0, fps=25.0, num_frames=90_000, width=64, height=48)
    for spec in ("fps:1e308", "fps:1e12", "fps:25", "fps:1000", "uniform:999999999999",
                 "window:0-1e9+fps:1e9", "fps:1e12,max_frames=7"):
        picked = build_sampler(spec).sample(meta).indices.numpy()
        assert len(picked) <= meta.num_frames
        assert picked.min() >= 0 and picked.max() < meta.num_frames
        assert np.all(np.diff(picked) > 0)
    assert len(build_sampler("fps:1e12,max_frames=7").sample(meta)) == 7
    assert len(build_sampler("fps:1000").sample(meta)) == 90_000


@pytest.mark.parametrize("out, needle", [
    ("{tmp}", "--out is a folder"),
    ("{tmp}/x.notanimage", "must end in one of"),
    ("{tmp}/existing_file/x.png", "is a file, not a folder"),
    ("/proc/x.png", "cannot be written under /proc"),
    ("/sys/x.png", "cannot be written under /sys"),
    ("{tmp}/", "not a folder"),
])
def test_bad_output_paths_are_one_line_before_any_decoding(capsys, clip, tmp_path, out, needle):
    (tmp_path / "existing_file").write_text("keep me\n")
    status, _, err = run_cli(capsys, "frames", clip, "--out", out.format(tmp=tmp_path))
    assert_one_error_line(status, err, needle)
    assert (tmp_path / "existing_file").read_text() == "keep me\n"


def test_output_in_a_new_folder_is_written_whole(capsys, clip, tmp_path):
    target = tmp_path / "new" / "deeper" / "sheet.jpg"
    status, out, err = run_cli(capsys, "frames", clip, "--out", str(target), "--sample", "uniform:4")
    assert status == 0, err
    assert target.read_bytes()[:2] == b"\xff\xd8"  # a JPEG, as the ending says
    assert not [p for p in target.parent.iterdir() if p.name != "sheet.jpg"]  # no temporary file left


def test_constructor_errors_of_a_compressor_are_one_line(capsys, clip):
    status, _, err = run_cli(capsys, "ask", clip, "What is shown?", "--options", "a", "b",
                             "--compress", "recurrent-bridge:width=3", "--no-cache")
    assert_one_error_line(status, err, "recurrent-bridge", "width 3")


@pytest.mark.parametrize("name, content, needle", [
    ("binary.yaml", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "binary file"),
    ("latin1.yaml", "sample: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("deep.yaml", ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested"),
    ("anchors.yaml", b"a: &a [*a]\n", "nested"),
    ("eo.yaml", b"encoder_options: fast\n", "encoder_options: expected a mapping"),
    ("mo.yaml", b"model_options: [1, 2]\n", "model_options: expected a mapping"),
    ("list.yaml", b"- 1\n- 2\n", "must be a mapping"),
    ("nan.yaml", b"budget: .nan\n", "budget: expected a whole number"),
    ("neg.yaml", b"budget: -5\n", "budget must be at least 1"),
    ("bool.yaml", b"chunk_size: true\n", "chunk_size: expected a whole number"),
    ("preset.yaml", b"preset: [x]\n", "preset must be a name"),
    ("sample.yaml", b"sample: {a: 1}\n", "sample: a mapping needs a 'name'"),  # a mapping is {name: ..., <options>}
    ("intkey.yaml", b"1: 2\n", "setting names must be words"),
    ("typo.yaml", b"sampel: uniform:4\n", "did you mean 'sample'"),
    ("dtype.yaml", b"dtype: float33\n", "did you mean 'float32'"),
    ("badyaml.yaml", b"a: [1, 2\n", "not valid YAML"),
])
def test_bad_config_files_are_one_line(capsys, clip, tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    status, _, err = run_cli(capsys, "ask", clip, "What?", "--options", "a", "b", "--config", str(path),
                             "--no-cache")
    assert_one_error_line(status, err, needle)


def test_a_folder_or_missing_file_as_config(capsys, clip, tmp_path):
    status, _, err = run_cli(capsys, "ask", clip, "What?", "--config", str(tmp_path))
    assert_one_error_line(status, err, "not a file")
    status, _, err = run_cli(capsys, "ask", clip, "What?", "--config", str(tmp_path / "none.yaml"))
    assert_one_error_line(status, err, "config file not found")


def test_demo_budget_field_is_read_or_refused_in_one_line():
    from mmlong.apps.demo.command import DemoSettings

    assert DemoSettings.from_fields(None, None, None, "2048", None).budget == 2048
    assert DemoSettings.from_fields(None, None, None, 512.0, None).budget == 512
    assert DemoSettings.from_fields(None, None, None, "0", None).budget is None
    for bad in ("abc", "nan", "inf", "-inf", "1.5", "1e400"):
        with pytest.raises(ConfigError, match="whole number of tokens"):
            DemoSettings.from_fields(None, None, None, bad, None)
