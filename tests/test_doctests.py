"""Docstring examples are part of the documentation: they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["mmlong.types", "mmlong.spec", "mmlong.registry", "mmlong.config.request",
           "mmlong.sampling.basic", "mmlong.sampling.scan", "mmlong.media.video.base", "mmlong.media.video.write",
           "mmlong.media.contact_sheet",
           "mmlong.models.loading", "mmlong.models.prompt_inputs", "mmlong.models.prompts",
           "mmlong.config.resolve", "mmlong.config.modelref", "mmlong.result", "mmlong.jobs.runner",
           "mmlong.frame_cache", "mmlong.frame_feed", "mmlong.experts.ocr_gate",
           "mmlong.apps.bench.hour_segments", "mmlong.apps.bench.hour", "mmlong.sampling.coverage",
           "mmlong.cache", "mmlong.limits", "mmlong.pipeline", "mmlong.qa", "mmlong.question_kinds",
           "mmlong.question_words",
           "mmlong.benchmarks.niavh_gold", "mmlong.benchmarks.niavh_kinds",
           *(f"mmlong.models.socratic.{name}" for name in ("answerer", "gemma", "grounding", "kind_rules",
                                                           "open_answers", "open_vocab", "segments", "time_anchor",
                                                           "transcript"))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
