"""How the lmms-eval bridge turns an lmms-eval request into a :class:`~mmlong.types.Query` (no lmms-eval import).

lmms-eval hands a model the task's finished prompt text. Reading the options back out of that text is fragile:
in ``videomme_w_subtitle`` the subtitles come first, and a subtitle line that starts "A:" or "B." would read as
an option. So when the document carries its options (Video-MME's ``options``, LongVideoBench's ``candidates`` or
``option0`` ... ``option4``), they are taken from the document and only those exact option lines are dropped from
the prompt, which becomes the question (subtitles and instructions kept, ``<image>`` placeholders of the
interleaved LongVideoBench tasks removed: mmlong samples the frames itself). Otherwise the options are the
**last** run of ``A.``/``(A)`` lines of the prompt.

>>> q = query_for("Subtitles:\\nA: hi there\\nB: hello\\nWhat is said?\\nA. hi\\nB. bye\\nAnswer.", None)
>>> q.options, q.question.splitlines()[-1]
(('hi', 'bye'), 'Answer.')
>>> query_for("A: hi there\\nWhat?\\nA. x\\nB. y", {"options": ["A. x", "B. y"]}).question
'A: hi there\\nWhat?'
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from mmlong.errors import ConfigError
from mmlong.qa import Answer, Query

_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.):])\s*(.*?)\s*$")
_LETTERED = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")


def doc_options(doc: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """The options a benchmark document carries (without their letters), or ``None``."""
    if not doc:
        return None
    if isinstance(doc.get("options"), (list, tuple)) and doc["options"]:  # Video-MME: "A. text"
        out = []
        for option in doc["options"]:
            match = _LETTERED.match(str(option))
            out.append(match.group(2) if match else str(option).strip())
        return tuple(out)
    if isinstance(doc.get("candidates"), (list, tuple)) and doc["candidates"]:  # LongVideoBench JSON
        return tuple(str(c) for c in doc["candidates"])
    if "option0" in doc:  # LongVideoBench parquet: option0 ... option4, "N/A" for none
        return tuple(str(doc[f"option{i}"]) for i in range(5) if doc.get(f"option{i}") not in (None, "N/A"))
    return None


def _option_at(line: str) -> tuple[int, str] | None:
    match = _OPTION_LINE.match(line)
    if not match:
        return None
    return ord(match.group(1) or match.group(2)) - ord("A"), match.group(3)


def query_for(context: str, doc: Mapping[str, Any] | None) -> Query:
    """The query of an lmms-eval prompt ``context`` about document ``doc`` (see the module docstring)."""
    lines = [line for line in context.splitlines() if line.strip() != "<image>"]
    options = doc_options(doc)
    if options:
        kept = []
        for line in lines:
            found = _option_at(line)
            if found and found[0] < len(options) and found[1].strip() == options[found[0]].strip():
                continue
            kept.append(line)
        return Query("\n".join(kept).strip() or context, options)
    start, count = -1, 0  # the last run of consecutive A, B, C... lines
    index = 0
    while index < len(lines):
        found = _option_at(lines[index])
        if found and found[0] == 0:
            run = 1
            while index + run < len(lines) and (_option_at(lines[index + run]) or (-1, ""))[0] == run:
                run += 1
            if run >= 2:
                start, count = index, run
            index += run
        else:
            index += 1
    if start < 0:
        return Query(context.strip())
    options = tuple(_option_at(line)[1] for line in lines[start:start + count])  # type: ignore[index]
    rest = [line for line in lines[:start] + lines[start + count:] if line.strip().lower() not in ("options:",)]
    question = "\n".join(rest).strip()
    if question.lower().startswith("question:"):
        question = question[len("question:"):].strip()
    return Query(question or context.strip(), options)


def option_logliks(answer: Answer, count: int, letters: bool) -> list[float]:
    """The model's real log-likelihood of each of ``count`` options (``Answer.details["option_loglik"]``), of
    their letters (``letters``) or of their texts; a one-line error when the model reports the other kind or none
    (a log-probability renormalised over the options alone is not a log-likelihood, so none is made up).

    >>> option_logliks(Answer("A", details={"option_loglik": [-0.1, -3.2], "option_loglik_kind": "letter"}), 2, True)
    [-0.1, -3.2]
    """
    values = answer.details.get("option_loglik")
    kind = answer.details.get("option_loglik_kind")
    wanted = "letter" if letters else "text"
    if not isinstance(values, (list, tuple)) or len(values) != count or kind != wanted:
        raise ConfigError(f"the model reports no log-likelihoods of option {wanted}s (it reports "
                          f"{kind or 'none'}); use a generate_until task, or a model that scores {wanted}s "
                          "(the socratic model: scoring likelihood/fused for texts, letter for letters)")
    return [float(v) for v in values]


def split_requests(arguments: list[tuple]) -> tuple[list[int], list[int]]:
    """Indices of the conditional loglikelihood requests (six arguments: context, continuation, visual, doc id,
    task, split) and of the unconditional ones ``("", choice)`` that ``acc_mutual_info`` adds.

    >>> split_requests([("ctx", " A", None, 0, "t", "test"), ("", " A")])
    ([0], [1])
    """
    conditional, unconditional = [], []
    for index, args in enumerate(arguments):
        (unconditional if len(args) == 2 else conditional).append(index)
    return conditional, unconditional
