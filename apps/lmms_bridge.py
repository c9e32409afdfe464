"""An lmms-eval model that runs an mmlong pipeline, so lmms-eval's own video tasks use our stages.

    lmms-eval --model mmlong --model_args preset=offline,sample=uniform:16,compress=tome:0.5 --tasks mlvu_dev

lmms-eval (EvolvingLMMs-Lab/lmms-eval, 0.7) finds the model through the entry point group ``lmms_eval.models``
(``mmlong = "mmlong.apps.lmms_bridge:lmms_eval_manifest"`` in pyproject.toml), so none of its files is edited.
It needs the optional extra ``mmlong[lmms]``, kept apart from the main install (``scripts/ensure-lmms-venv.sh``).

- ``generate_until``: the task's prompt becomes a :class:`~mmlong.types.Query`; when it lists options
  (``(A) ...`` or ``A. ...`` lines) the pipeline picks one and the reply is its letter, otherwise the reply is
  the model's text, cut at the task's ``until`` strings. Requests about one video share one encoding.
- ``loglikelihood`` (``output_type: multiple_choice``): lmms-eval sends one request per choice with the same
  context; the choices of one document become the options of one query and each choice's log-likelihood is the
  log of the model's probability for that option (:func:`option_probabilities`), the distribution the model's
  own multiple-choice answer is decided by (letter after ``Best option: (``, or option-text likelihood).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from mmlong.errors import ConfigError
from mmlong.types import Answer, Query


def lmms_eval_manifest() -> Any:
    """The entry point lmms-eval loads: model id ``mmlong`` -> :class:`MmlongLMM`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="mmlong", simple_class_path="mmlong.apps.lmms_bridge.MmlongLMM")


def _video_of(visuals: Any, task: str) -> str:
    """The video path among a document's visuals (lmms-eval video tasks give a list with one path)."""
    items = visuals if isinstance(visuals, (list, tuple)) else [visuals]
    paths = [v for v in items if isinstance(v, str)]
    if not paths:
        kinds = sorted({type(v).__name__ for v in items}) or ["nothing"]
        raise ConfigError(f"lmms-eval task {task!r} gave {', '.join(kinds)} instead of a video path; "
                          "the mmlong model answers video tasks")
    return paths[0]


def option_probabilities(answer: Answer, count: int) -> list[float] | None:
    """The model's probability of each option, from ``Answer.details["option_probs"]`` (a letter mapping every
    model reports for multiple choice); ``None`` when it reports none."""
    probs = answer.details.get("option_probs")
    if not isinstance(probs, dict):
        return None
    scores = [probs.get(chr(ord("A") + i)) for i in range(count)]
    if any(s is None for s in scores):
        return None
    return [float(s) for s in scores]


#: model arguments lmms-eval adds on its own, which are not pipeline settings
LMMS_EVAL_ARGS = ("device_map", "max_length")


def _cut(text: str, until: Sequence[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def _query_for(context: str) -> Query:
    from mmlong.apps.mlvu import parse_embedded_options

    question, options = parse_embedded_options(context)
    return Query(question or context, options)


class MmlongLMM(lmms):
    """lmms-eval's model interface over :class:`mmlong.pipeline.Pipeline`.

    Model arguments are PipelineConfig fields (``preset``, ``config`` (a YAML file), ``sample``, ``compress``,
    ``budget``, ``model`` (a registered name, a local checkpoint directory or an org/name hub id),
    ``model_family``, ``encoder``, ``device``, ``dtype``...); unset ones keep the preset's values. ``budget`` is
    a token budget here (a memory size is refused: lmms-eval hands the videos over one request at a time). They are
    resolved by :func:`mmlong.resolve.resolve`, as the CLI's flags are
    (:func:`mmlong.apps.options.resolve_settings`).
    """

    def __init__(self, preset: str = "offline", config: str | None = None, batch_size: int | str = 1,
                 **settings: Any) -> None:
        super().__init__()
        from mmlong.apps.options import resolve_settings
        from mmlong.pipeline import Pipeline

        self.pipeline_config = resolve_settings(preset, config, settings, ignore=LMMS_EVAL_ARGS)
        if self.pipeline_config.runtime.memory_budget is not None:  # lmms-eval picks the videos as it goes
            raise ConfigError("a memory budget (budget=12GB) is planned over a run's videos before it starts; "
                              "the bridge cannot see them: give a token budget, or plan with `mmlong plan`")
        self.pipeline = Pipeline(self.pipeline_config, progress=False)
        self.batch_size_per_gpu = int(batch_size)

    # ------------------------------------------------------------------ lmms-eval's interface
    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _ask_grouped(self, jobs: list[tuple[str, Query]]) -> list[Answer]:
        """Answer ``(video, query)`` pairs, one encoding per video, results in input order."""
        by_video: dict[str, list[int]] = {}
        for n, (video, _) in enumerate(jobs):
            by_video.setdefault(video, []).append(n)
        answers: list[Answer | None] = [None] * len(jobs)
        for video, indices in by_video.items():
            for n, answer in zip(indices, self.pipeline.ask_many(video, [jobs[n][1] for n in indices])):
                answers[n] = answer
        return answers  # type: ignore[return-value]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        jobs, stops = [], []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            video = _video_of(doc_to_visual(self._doc(task, split, doc_id)), task)
            jobs.append((video, _query_for(context)))
            until = (gen_kwargs or {}).get("until") or []
            stops.append([until] if isinstance(until, str) else list(until))
        replies = []
        for (_, query), answer, until in zip(jobs, self._ask_grouped(jobs), stops):
            replies.append(answer.letter if query.is_multiple_choice and answer.letter else _cut(answer.text, until))
        return replies

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        # the choices of one document (same task, split, doc and context) become the options of one query
        docs: dict[tuple, list[tuple[int, str]]] = {}
        visuals: dict[tuple, str] = {}
        for n, request in enumerate(requests):
            context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            target = doc_to_target(doc) if callable(doc_to_target) else doc_to_target
            key = (task, split, doc_id, context)
            docs.setdefault(key, []).append((n, str(target)))
            visuals[key] = _video_of(doc_to_visual(doc), task)
        keys = list(docs)
        plans = [self._choice_query(k[3], [t for _, t in docs[k]]) for k in keys]
        jobs = [(visuals[k], query) for k, (query, _) in zip(keys, plans)]
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for key, (query, indices), answer in zip(keys, plans, self._ask_grouped(jobs)):
            scores = option_probabilities(answer, len(query.options))
            if scores is None:
                raise ConfigError(f"model {self.pipeline_config.model.family!r} does not report option scores, which "
                                  "multiple-choice log-likelihoods need; use a generate_until task")
            best = max(range(len(scores)), key=lambda i: scores[i])
            for (n, _), index in zip(docs[key], indices):
                results[n] = (math.log(max(float(scores[index]), 1e-12)), index == best)
        return results

    @staticmethod
    def _choice_query(context: str, targets: list[str]) -> tuple[Query, list[int]]:
        """The query for a document's choices and the option index of each choice.

        The options are the choices themselves, unless the context lists the options and the choices are
        their letters (``" A"``, ``"(B)"``).
        """
        query = _query_for(context)
        letters = [t.strip().strip("()").upper() for t in targets]
        if query.is_multiple_choice and all(len(x) == 1 and 0 <= ord(x) - ord("A") < len(query.options)
                                            for x in letters):
            return query, [ord(x) - ord("A") for x in letters]
        return Query(query.question, tuple(t.strip() for t in targets)), list(range(len(targets)))

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the mmlong model answers single-round tasks; multi-round tasks are not supported")
