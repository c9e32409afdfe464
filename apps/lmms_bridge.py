"""An lmms-eval model that runs an mmlong pipeline, so lmms-eval's own video tasks use our stages.

    lmms-eval --model mmlong --model_args preset=offline,sample=uniform:16,compress=tome:0.5 --tasks mlvu_dev

lmms-eval (EvolvingLMMs-Lab/lmms-eval, 0.7) finds the model through the entry point group ``lmms_eval.models``
(``mmlong = "mmlong.apps.lmms_bridge:lmms_eval_manifest"`` in pyproject.toml), so none of its files is edited.
It needs the optional extra ``mmlong[lmms]``, kept apart from the main install (``scripts/ensure-lmms-venv.sh``).

- ``generate_until``: the task's prompt becomes a :class:`~mmlong.types.Query`
  (:func:`mmlong.apps.lmms_queries.query_for`: the options from the document when it has them, so subtitle lines
  are never read as options); the pipeline picks an option and the reply is its letter, otherwise the reply is
  the model's text, cut at the task's ``until`` strings. Requests about one video share one encoding. The
  interleaved LongVideoBench tasks (``longvideobench_val_i``) hand over decoded frames; the bridge answers from
  the document's video file instead (mmlong samples its own frames) and keeps the task's subtitle lines.
  lmms-eval tasks write their own subtitles into the prompt, so no expert or subtitle line of the pipeline is
  added (``Query.timed_text`` off).
- ``loglikelihood`` (``output_type: multiple_choice``): lmms-eval sends one request per choice with the same
  context; the choices of one document become the options of one query and each choice gets the model's real
  log-likelihood of that choice after its prompt (``Answer.details["option_loglik"]``: a letter's log-probability
  over the whole vocabulary, or an option text's summed token log-probabilities), greedy when it is the largest.
  ``acc_mutual_info`` adds requests ``("", choice)`` with no context: the log-likelihood of the choice text alone
  (no video, no prompt), from the model's language model (``text_loglik``).
"""

from __future__ import annotations

from typing import Any, Sequence

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from mmlong.apps.lmms_queries import option_logliks, split_requests
from mmlong.errors import ConfigError
from mmlong.qa import Answer, Query


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


#: model arguments lmms-eval adds on its own, which are not pipeline settings
LMMS_EVAL_ARGS = ("device_map", "max_length")


def _cut(text: str, until: Sequence[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def _query_for(context: str, doc: Any = None) -> Query:
    from dataclasses import replace

    from mmlong.apps.lmms_queries import query_for

    return replace(query_for(context, doc), timed_text=False)


def _video_for(doc_to_visual: Any, doc: Any, task: str) -> str:
    """The video file of a document: its visual, or for the interleaved LongVideoBench tasks (whose visuals are
    decoded frames) the file the ``_v`` task would give."""
    if str(task).startswith("longvideobench") and isinstance(doc, dict) and doc.get("video_path"):
        from lmms_eval.tasks.longvideobench.utils import longvideobench_doc_to_visual_v

        return _video_of(longvideobench_doc_to_visual_v(doc), task)
    return _video_of(doc_to_visual(doc), task)


class MmlongLMM(lmms):
    """lmms-eval's model interface over :class:`mmlong.pipeline.Pipeline`.

    Model arguments are PipelineConfig fields (``preset``, ``config`` (a YAML file), ``sample``, ``compress``,
    ``budget``, ``model`` (a registered name, a local checkpoint directory or an org/name hub id),
    ``model_family``, ``encoder``, ``device``, ``dtype``...); unset ones keep the preset's values. ``budget`` is
    a token budget here (a memory size is refused: lmms-eval hands the videos over one request at a time). They are
    resolved by :func:`mmlong.config.resolve.resolve`, as the CLI's flags are
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
            doc = self._doc(task, split, doc_id)
            jobs.append((_video_for(doc_to_visual, doc, task), _query_for(context, doc)))
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
        documents: dict[tuple, Any] = {}
        conditional, bare = split_requests([request.args for request in requests])
        unconditional = [(n, str(requests[n].args[1])) for n in bare]  # acc_mutual_info: ("", choice)
        for n in conditional:
            request = requests[n]
            context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            target = doc_to_target(doc) if callable(doc_to_target) else doc_to_target
            key = (task, split, doc_id, context)
            docs.setdefault(key, []).append((n, str(target)))
            visuals[key] = _video_for(doc_to_visual, doc, task)
            documents[key] = doc
        keys = list(docs)
        plans = [self._choice_query(k[3], [t for _, t in docs[k]], documents[k]) for k in keys]
        jobs = [(visuals[k], query) for k, (query, _, _) in zip(keys, plans)]
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for key, (query, indices, letters), answer in zip(keys, plans, self._ask_grouped(jobs)):
            lls = option_logliks(answer, len(query.options), letters)  # real log-likelihoods
            best = max(range(len(lls)), key=lambda i: lls[i])
            for (n, _), index in zip(docs[key], indices):
                results[n] = (lls[index], index == best)
        if unconditional:
            scorer = getattr(self.pipeline.model, "text_loglik", None)
            if scorer is None:
                raise ConfigError(f"model {self.pipeline_config.model.family!r} cannot score a text without a "
                                  "video, which acc_mutual_info needs")
            self.pipeline.load_model()
            for (n, _), ll in zip(unconditional, scorer("", [text for _, text in unconditional])):
                results[n] = (float(ll), False)
        return results

    @staticmethod
    def _choice_query(context: str, targets: list[str], doc: Any = None) -> tuple[Query, list[int], bool]:
        """The query for a document's choices, the option index of each choice, and whether the choices are
        the options' letters (``" A"``, ``"(B)"``, when the context lists the options) rather than their texts."""
        from dataclasses import replace

        query = _query_for(context, doc)
        letters = [t.strip().strip("()").upper() for t in targets]
        if query.is_multiple_choice and all(len(x) == 1 and 0 <= ord(x) - ord("A") < len(query.options)
                                            for x in letters):
            return query, [ord(x) - ord("A") for x in letters], True
        return replace(query, options=tuple(t.strip() for t in targets)), list(range(len(targets))), False

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the mmlong model answers single-round tasks; multi-round tasks are not supported")
