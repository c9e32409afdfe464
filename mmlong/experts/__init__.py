"""Experts: stages that write timestamped text lines about a video beside what the visual encoder sees.

An expert reads the video file itself (frames for on-screen text, the audio track for speech, a subtitle file)
and returns :class:`~mmlong.experts.base.TimedText` lines: ``(start, end, source, text, confidence)``. The
pipeline runs the experts named in ``PipelineConfig.experts`` (``--experts ocr,asr``) and ``subtitles``
(``--subtitles asr|FILE.srt``), each through an on-disk cache keyed by the video's content and the expert's
config (:mod:`mmlong.experts.cache`), and hands the lines to the model: the Socratic answerer interleaves them
with its ImageNet lines, native VLMs read them as subtitles at the sampled frames' times.

Built-in experts (registry ``EXPERTS``): ``ocr`` (RapidOCR, PP-OCRv4), ``asr`` (faster-whisper, Whisper base),
``subtitles`` (an .srt / .vtt file).
"""
