"""The web demo end to end: `mmlong demo` in a subprocess, driven by Debian's headless Chromium with Playwright.

Needs /usr/bin/chromium (scripts/ensure-browser.sh installs it; scripts/test.sh runs that first). Set
MMLONG_SCREENSHOT=path/to/demo.png to keep the screenshot (docs/demo.png comes from here).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("MMLONG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVER_START_S = 90
ANSWER_S = 300  # the first question may convert the packaged Gemma to its safetensors cache (~1 min)

pytestmark = pytest.mark.browser

#: records in window.mmlongStatuses each distinct text the #status element shows, in order
RECORD_STATUS = """() => {
  window.mmlongStatuses = [];
  const status = document.querySelector("#status");
  const record = () => {
    const text = status.innerText.trim();
    if (text && window.mmlongStatuses[window.mmlongStatuses.length - 1] !== text) window.mmlongStatuses.push(text);
  };
  new MutationObserver(record).observe(status, {subtree: true, childList: true, characterData: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mmlong demo exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mmlong demo did not answer on {url} within {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def cat_haystack(tmp_path):
    """Real footage with a needle: bigbuckbunny at 320x180 with scikit-image's chelsea cat from 2.0 s to 3.8 s."""
    import torch

    from mmlong.assets.samples import sample_image, sample_video
    from mmlong.benchmarks.niavh_media import fit_frame
    from mmlong.media.video import open_video
    from mmlong.media.video.write import write_video

    with open_video(sample_video("bigbuckbunny"), max_side=320) as source:
        frames = source.read(torch.arange(source.meta.num_frames)).data.numpy().copy()
        fps = source.meta.fps
    first, last = int(2.0 * fps), int(3.8 * fps)
    frames[first:last] = fit_frame(sample_image("chelsea"), frames.shape[2], frames.shape[1])
    return Path(write_video(tmp_path / "cat_haystack.mp4", list(frames), fps))


@pytest.fixture
def demo_server(tmp_path):
    """`mmlong demo` on 127.0.0.1 and a free port; always terminated."""
    port = free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "mmlong", "demo", "--port", str(port), "--cache-dir", str(tmp_path / "cache")]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_server(url, process, log, SERVER_START_S)
        yield url, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_ask_about_an_uploaded_video_in_chromium(demo_server, cat_haystack, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/ensure-browser.sh` (scripts/test.sh does it)")
    from playwright.sync_api import expect, sync_playwright

    url, log = demo_server
    screenshot = tmp_path / "demo.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="domcontentloaded")
            expect(page.get_by_text("ask a question about a video")).to_be_visible()
            # a text file renamed .mp4: a one-line reason in the page, no traceback
            bad = tmp_path / "notes.mp4"
            bad.write_text("these are notes, not a video\n" * 50)
            page.locator("#video input[type=file]").set_input_files(str(bad))
            page.locator("#question textarea").fill("What happens?")
            page.locator("#ask").click()
            expect(page.locator("#status")).to_contain_text("notes.mp4: not a video file", timeout=60_000)
            assert "Traceback" not in page.content()
            page.locator("#video").get_by_role("button", name="Clear").click()

            page.locator("#video input[type=file]").set_input_files(str(cat_haystack))
            expect(page.locator("#video video")).to_be_attached()
            page.locator("#question textarea").fill("What animal appears in the video?")
            page.locator("#options textarea").fill("a cat\na dog\na guitar\na sailboat")
            page.get_by_text("Settings").click()
            page.locator("#compress textarea, #compress input").first.fill("scenetile,tome:0.5")
            page.evaluate(RECORD_STATUS)  # every text the status shows from now on, in order
            page.locator("#ask").click()

            answer = page.locator("#answer textarea")
            expect(answer).not_to_have_value("", timeout=ANSWER_S * 1000)
            # the page streamed the phases it was in (not only "processing | 5.7s"), then the answer
            shown = page.evaluate("() => window.mmlongStatuses")
            phases = list(dict.fromkeys(line.split("Working: ", 1)[1].split(" … (")[0]
                                        for text in shown for line in text.splitlines() if "Working: " in line))
            assert len(phases) >= 2, shown
            assert any(p.startswith("scanning cat_haystack.mp4") for p in phases), phases
            assert any(p.startswith("answering question 1 of 1") for p in phases), phases
            text = answer.input_value()
            status = page.locator("#status").inner_text()
            assert text.startswith("(") and ")" in text, f"answer {text!r}; status {status!r}; log:\n" \
                                                          f"{log.read_text()[-3000:]}"
            assert text == "(A) a cat", f"the demo answered {text!r} for a video showing a cat"
            assert "Answered in" in status
            expect(page.locator("#option textarea")).to_have_value("(A) a cat")
            # clicking an evidence time seeks the video there
            seek = page.locator("#evidence [data-seek]").first
            expect(seek).to_be_visible()
            target = float(seek.get_attribute("data-seek"))
            assert 0.0 <= target <= 6.0
            seek.click()
            video = page.locator("#video video")
            page.wait_for_function("t => Math.abs(document.querySelector('#video video').currentTime - t) < 0.05",
                                   arg=target, timeout=10_000)
            assert abs(video.evaluate("v => v.currentTime") - target) < 0.05

            timeline = page.locator("#timeline img")
            expect(timeline).to_be_visible()
            width = timeline.evaluate("img => img.complete ? img.naturalWidth : 0")
            assert width == 1000
            expect(page.locator("#keyframes img")).to_be_visible()
            for stage in ("decode", "encode", "scenetile", "tome", "model"):
                expect(page.locator("#stages")).to_contain_text(stage)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    target = os.environ.get("MMLONG_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target)
