"""Accuracy tables shared by the benchmark adapters: per-group accuracy, macro and micro averages, Markdown.

A benchmark's per-item record is a dict with at least ``correct`` (bool) and a grouping key (``question_type``
for MLVU, ``needle_type`` / ``depth`` / ``length`` for NIAVH). Records with an ``error`` are not scored; they are
counted apart, so a missing video never silently becomes a wrong answer or a right one.

>>> records = [
...     {"question_type": "count", "correct": True},
...     {"question_type": "count", "correct": False},
...     {"question_type": "count", "correct": False},
...     {"question_type": "needle", "correct": True},
...     {"question_type": "needle", "error": "video missing"},
... ]
>>> table = accuracy_table(records, "question_type")
>>> {k: round(v["accuracy"], 4) for k, v in table.items()}
{'count': 0.3333, 'needle': 1.0}
>>> round(macro_average(table), 4), round(micro_average(table), 4)
(0.6667, 0.5)
>>> print(markdown_table(["task", "acc"], [["count", "33.3"], ["needle", "100.0"]]))
| task | acc |
|---|---|
| count | 33.3 |
| needle | 100.0 |
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from mmlong.errors import ConfigError
from mmlong.limits import loads_json
from mmlong.qa import Answer, Query


@dataclass(frozen=True)
class EvalItem:
    """One question of a benchmark, ready for a pipeline.

    id: unique within the benchmark; video: the video file (``None`` when it could not be found; ``missing``
    says why); query: the question and options; answer: the correct option letter (or ``None`` for open
    questions); meta: what the benchmark's scorer and tables need (task type, depth, length, references...).
    """

    id: str
    video: str | None
    query: Query
    answer: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    missing: str | None = None

    @property
    def group(self) -> str:
        """Items of one video form a group: they share one encoding and stay on one rank."""
        return self.video or f"missing:{self.id}"


class Benchmark:
    """A benchmark: its questions as :class:`EvalItem` s and how to score the answers.

    Subclasses set ``name`` and a ``Config`` dataclass (what to load: data folder, tasks, limits) and implement
    :meth:`items`, :meth:`record`, :meth:`summarize` and :meth:`report`; :meth:`error_record` and
    :meth:`figures` have defaults. Built-ins are registered in :data:`mmlong.registry.BENCHMARKS`
    (``BENCHMARKS.create("mlvu", data=...)``), third parties add entry points in ``mmlong.benchmarks``;
    :func:`mmlong.apps.eval.run.run_benchmark` runs any of them through the one job runner.
    """

    name: ClassVar[str] = "benchmark"

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def items(self) -> list[EvalItem]:
        """Every question, in a stable order (ids unique within the benchmark)."""
        raise NotImplementedError

    def record(self, item: EvalItem, answer: Answer) -> dict[str, Any]:
        """The scored record of one answered item: ``{"id", "correct", ...}``."""
        raise NotImplementedError

    def error_record(self, item: EvalItem, reason: str) -> dict[str, Any]:
        """The record of an item that could not be answered (not scored; counted apart)."""
        return {"id": item.id, "correct": False, "error": reason}

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The numbers of a run from its records (accuracies, counts, errors)."""
        raise NotImplementedError

    def report(self, summary: Mapping[str, Any]) -> str:
        """The summary as Markdown."""
        raise NotImplementedError

    def figures(self, summary: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """Figures drawn from the summary into ``out_dir`` (none by default)."""
        return []


def accuracy_table(records: Iterable[Mapping[str, Any]], key: str | Sequence[str]) -> dict[Any, dict[str, Any]]:
    """Per-group ``{"correct", "total", "accuracy"}`` over the scored records (those without ``error``).

    ``key`` is a record field or a tuple of fields (the group is then a tuple). Groups keep first-seen order.
    """
    keys = (key,) if isinstance(key, str) else tuple(key)
    table: dict[Any, dict[str, Any]] = {}
    for record in records:
        if record.get("error"):
            continue
        group = record.get(keys[0]) if len(keys) == 1 else tuple(record.get(k) for k in keys)
        row = table.setdefault(group, {"correct": 0, "total": 0})
        row["total"] += 1
        row["correct"] += int(bool(record.get("correct")))
    for row in table.values():
        row["accuracy"] = row["correct"] / row["total"] if row["total"] else 0.0
    return table


def macro_average(table: Mapping[Any, Mapping[str, Any]]) -> float:
    """Mean of the per-group accuracies (MLVU's M-Avg); 0.0 for an empty table."""
    accs = [row["accuracy"] for row in table.values() if row["total"]]
    return sum(accs) / len(accs) if accs else 0.0


def micro_average(table: Mapping[Any, Mapping[str, Any]]) -> float:
    """Correct answers over all scored questions, whatever their group."""
    total = sum(row["total"] for row in table.values())
    return sum(row["correct"] for row in table.values()) / total if total else 0.0


def error_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How many records failed, and why (the first few ids per reason)."""
    reasons: dict[str, list[str]] = {}
    for record in records:
        if record.get("error"):
            reasons.setdefault(str(record["error"]), []).append(str(record.get("id")))
    return {
        "count": sum(len(ids) for ids in reasons.values()),
        "reasons": {reason: {"count": len(ids), "ids": ids[:10]} for reason, ids in reasons.items()},
    }


def percent(value: float) -> str:
    """``0.8333`` -> ``"83.3"``."""
    return f"{100.0 * value:.1f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_LEADING_LETTER = re.compile(r"^\W*\(?([A-Z])(?:\)|\.|:|$)")


def letter_from_reply(text: str, count: int) -> str | None:
    """The option letter a free-text reply starts with (``"B"``, ``"(B) a cat"``, ``"B. a cat"``), as MLVU's
    evaluation reads it; ``None`` when the reply names no letter among the first ``count``.

    Models that choose from their letter distribution set :attr:`~mmlong.types.Answer.option_index` themselves;
    this reads replies of models that only write text.

    >>> letter_from_reply("(C) a rocket", 4), letter_from_reply("B", 2), letter_from_reply("A cat.", 4)
    ('C', 'B', None)
    """
    match = _LEADING_LETTER.match(text.strip())
    if match and ord(match.group(1)) - ord("A") < count:
        return match.group(1)
    return None


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation and articles removed, whitespace collapsed (SQuAD-style normalisation).

    >>> normalize_answer("The  Rocket!")
    'rocket'
    """
    text = str(text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


_NUMBER = re.compile(r"\b\d{1,9}\b")


def spell_numbers(text: str) -> str:
    """Digits written as words (``"17"`` -> ``"seventeen"``), so a spoken or written number matches either way.

    >>> spell_numbers("The password is 17.")
    'The password is seventeen.'
    """
    from num2words import num2words

    return _NUMBER.sub(lambda m: num2words(int(m.group(0))).replace("-", " ").replace(",", ""), str(text))


def open_answer_match(prediction: str, references: Sequence[str]) -> str | None:
    """The reference (or synonym) that a free-form ``prediction`` states, or ``None``.

    After :func:`normalize_answer` (and numbers spelled out, :func:`spell_numbers`), a reference matches when it
    equals the prediction or occurs in it as whole words ("a tabby cat" states "cat"; "category" does not).

    >>> open_answer_match("It is a tabby cat.", ["cat", "kitten"])
    'cat'
    >>> open_answer_match("category", ["cat"]) is None
    True
    >>> open_answer_match("The password is 17", ["seventeen"])
    'seventeen'
    """
    pred = f" {normalize_answer(spell_numbers(prediction))} "
    for reference in references:
        ref = normalize_answer(spell_numbers(reference))
        if ref and f" {ref} " in pred:
            return reference
    return None


def read_annotation_records(path: str | Path) -> list[dict[str, Any]]:
    """A benchmark's annotation records from ``.json`` (a list), ``.jsonl`` or ``.parquet`` (the Hugging Face
    copies); anything else is a one-line :class:`~mmlong.errors.ConfigError` naming the file."""
    path = Path(path)
    try:
        if path.suffix == ".jsonl":
            data = [loads_json(line, f"line {n}") for n, line in enumerate(path.read_text().splitlines(), start=1)
                    if line.strip()]
        elif path.suffix == ".parquet":
            import pandas

            data = json.loads(pandas.read_parquet(path).to_json(orient="records"))
        else:
            data = loads_json(path.read_text(), "the annotation JSON")
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, or nested too deeply
        raise ConfigError(f"not a valid annotation file ({err})", str(path)) from err
    except ImportError as err:
        raise ConfigError("reading .parquet needs pandas and pyarrow (pip install pyarrow)", str(path)) from err
    except OSError as err:
        raise ConfigError(f"cannot read it ({err.strerror or err})", str(path)) from err
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ConfigError("expected a JSON list of question records", str(path))
    return data
