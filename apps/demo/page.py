"""The demo's Gradio page: inputs, settings panel and the figures of :class:`~mmlong.apps.demo.command.DemoApp`.

Gradio is imported only when the page is built, so ``mmlong --help`` stays fast.
"""

from __future__ import annotations

from typing import Any, Iterator

STAGE_HEADERS = ["stage", "tokens in", "tokens out", "ms", "peak MiB", "notes"]

#: example questions for the sample clips: (clip, question, options one per line); picking one loads the clip
EXAMPLE_QUESTIONS = (
    ("bigbuckbunny", "What animal appears in the video?", "a rabbit\na dog\na guitar\na sailboat"),
    ("bigbuckbunny", "What is in the video?", ""),
    ("bikes", "What vehicle is shown?", "a bicycle\na sailboat\na fire truck\na piano"),
    ("carphone_pristine", "What is the man holding to his ear?", "a phone\na cup\na guitar\na book"),
    ("carphone_distorted", "Where is the man sitting?", "in a car\non a boat\nat a desk\non a horse"),
)

#: one click handler for the page (``Blocks.launch(head=...)``): a ``[data-seek]`` button seeks the video there
SEEK_SCRIPT = """<script>
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-seek]");
  const video = document.querySelector("#video video");
  if (!button || !video) return;
  video.currentTime = parseFloat(button.dataset.seek);
  video.pause();
});
</script>"""


def evidence_links(times: Any) -> str:
    """The answer's evidence times as buttons that seek the video there (:data:`SEEK_SCRIPT`).

    >>> evidence_links([2.5, 61.0])
    '<button class="seek" data-seek="2.5" title="seek the video to 00:02.5">00:02.5</button> <button ...'
    >>> evidence_links([])
    '(none)'
    """
    from mmlong.apps.render import format_seconds

    buttons = [f'<button class="seek" data-seek="{float(t):g}" title="seek the video to {format_seconds(t)}">'
               f'{format_seconds(t)}</button>' for t in times]
    return " ".join(buttons) or "(none)"


def ask_updates(app: Any, video: Any, question: Any, options: Any, fields: tuple) -> Iterator[tuple]:
    """The Ask button's handler: yields the page's outputs (status, answer, option, evidence, what the question
    asks, timeline, keyframes, stage table): first the phase the request is in (the other outputs cleared),
    one update per phase (:meth:`~mmlong.apps.demo.command.DemoApp.ask_stream`), then the answer.
    ``fields``: the settings panel (preset, sampler, chain, budget, model)."""
    import time

    from mmlong.apps.demo.settings import DemoResult, DemoSettings, readable_error
    from mmlong.errors import MmlongError

    try:
        settings = DemoSettings.from_fields(*fields)
    except MmlongError as err:
        yield DemoResult.failure(readable_error(err)).status, "", "", "", "", None, None, None
        return
    start = time.perf_counter()
    for event in app.ask_stream(video, question, options, settings):
        if isinstance(event, str):
            yield f"Working: {event} … ({time.perf_counter() - start:.0f} s)", "", "", "", "", None, None, None
            continue
        links = evidence_links(event.answer.evidence) if event.answer is not None else ""
        yield (event.status, event.answer_text, event.option, links, event.question_kind, event.timeline_png,
               event.keyframes_png, event.stage_rows or None)


def build_blocks(app: Any, concurrency: int = 1) -> Any:
    """The Gradio Blocks page around ``app``."""
    import gradio as gr

    defaults = app.default_settings_text()
    from mmlong.apps.demo.settings import readable_error
    from mmlong.config.request import preset_names

    with gr.Blocks(title="mmlong demo", analytics_enabled=False, delete_cache=(1800, 3600)) as blocks:
        gr.Markdown("## mmlong — ask a question about a video\nUpload a video or pick a sample clip, ask, and "
                    "see which moments the answer rests on.")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload"], elem_id="video", height=260)
                sample = gr.Dropdown(choices=app.sample_choices(), value=None, label="…or a sample clip",
                                     elem_id="sample")
                question = gr.Textbox(label="Question", placeholder="What animal appears in the video?",
                                      elem_id="question")
                options = gr.Textbox(label="Options (one per line, optional)", lines=4, elem_id="options",
                                     placeholder="a cat\na dog\na guitar\na sailboat")
                ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
                with gr.Accordion("Settings", open=False):
                    preset = gr.Dropdown(choices=preset_names(), value=defaults["preset"] or None, label="Preset",
                                         elem_id="preset")
                    sampler = gr.Textbox(label="Sampler", placeholder=defaults["sample"], elem_id="sampler")
                    compress = gr.Textbox(label="Compressor chain", placeholder=defaults["compress"],
                                          elem_id="compress")
                    budget = gr.Number(label="Token budget (0: none)", value=0, precision=0, minimum=0,
                                       elem_id="budget")
                    model = gr.Textbox(label="Model (name or local checkpoint directory)",
                                       placeholder=defaults["model"], elem_id="model")
            with gr.Column(scale=2):
                status = gr.Markdown("Ready.", elem_id="status")
                with gr.Row():
                    answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
                    option = gr.Textbox(label="Chosen option", interactive=False, elem_id="option")
                    evidence = gr.HTML(label="Evidence times (click to seek the video)", elem_id="evidence",
                                       show_label=True)
                    asks = gr.Textbox(label="The question asks", interactive=False, elem_id="question-kind")
                timeline = gr.Image(label="Timeline: relevance to the question, scenes, frames the model saw",
                                    type="filepath", interactive=False, elem_id="timeline", height=300,
                                    buttons=["download"])
                keyframes = gr.Image(label="Keyframes the model saw", type="filepath", interactive=False,
                                     elem_id="keyframes", height=260, buttons=["download"])
                stages = gr.Dataframe(headers=STAGE_HEADERS, label="What each stage did", interactive=False,
                                      elem_id="stages")

        def on_sample(name: str | None) -> Any:
            from mmlong.errors import MmlongError

            try:
                return app.load_sample(name), "Sample loaded. Ask a question."
            except MmlongError as err:
                return None, f"**Could not load the sample.** {readable_error(err)}"

        def on_ask(video_path, question_text, options_text, preset_v, sampler_v, compress_v, budget_v, model_v):
            # a generator: the page shows each phase (loading, scanning, encoding, answering, ...) as it starts
            yield from ask_updates(app, video_path, question_text, options_text,
                                   (preset_v, sampler_v, compress_v, budget_v, model_v))

        available = set(app.sample_choices())
        examples = [list(row) for row in EXAMPLE_QUESTIONS if row[0] in available]
        if examples:
            gr.Examples(examples=examples, inputs=[sample, question, options], label="Example questions",
                        examples_per_page=len(examples))
        sample.change(on_sample, inputs=sample, outputs=[video, status])
        inputs = [video, question, options, preset, sampler, compress, budget, model]
        outputs = [status, answer, option, evidence, asks, timeline, keyframes, stages]
        ask_button.click(on_ask, inputs=inputs, outputs=outputs, concurrency_limit=concurrency)
        question.submit(on_ask, inputs=inputs, outputs=outputs, concurrency_limit=concurrency)
    blocks.queue(default_concurrency_limit=concurrency, max_size=32)
    return blocks
