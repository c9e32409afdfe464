"""Bounds of what a user hands in, checked at the door before any work: a question and its options, and the
nesting of JSON read from a user's file. Each refusal is a one-line :class:`~mmlong.errors.ConfigError` (or a
``ValueError`` a reader turns into one naming its file).

>>> check_query("What is shown?", ["a cat", "a dog"])
>>> check_query("What is shown?", [""])
Traceback (most recent call last):
...
mmlong.errors.ConfigError: question: option 1 is empty; every option needs words
>>> json_depth({"a": [1, {"b": []}]})
4
>>> loads_json("[" * 100 + "]" * 100, "line 3")
Traceback (most recent call last):
...
ValueError: line 3: nested deeper than 64 levels
"""

from __future__ import annotations

from typing import Any

from mmlong.errors import ConfigError

# Bounds of one question, checked before any grounding or model work: a letter per option (A..Z), and text
# lengths far above any benchmark's (a longer "question" is a document, and the model would try to hold it all).
MAX_OPTIONS = 26
MAX_QUESTION_CHARS = 8000
MAX_OPTION_CHARS = 1000
# Nesting of a JSON value read from a user's file (a questions line, an annotation file, a config.json).
MAX_JSON_DEPTH = 64


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_query(question: Any, options: Any = (), what: str = "question") -> None:
    """Refuse a question no model should be asked: empty, longer than :data:`MAX_QUESTION_CHARS`, more than
    :data:`MAX_OPTIONS` options, an empty or over-long option. Checked before any work on it."""
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{what}: the question is empty; ask something")
    if len(question) > MAX_QUESTION_CHARS:
        raise ConfigError(f"{what}: the question has {len(question):,} characters; at most {MAX_QUESTION_CHARS:,}")
    options = list(options or ())
    if len(options) > MAX_OPTIONS:
        raise ConfigError(f"{what}: {len(options)} options; a multiple-choice question has at most {MAX_OPTIONS} "
                          "(one letter each, A to Z)")
    for number, option in enumerate(options, start=1):
        if not isinstance(option, str) or not option.strip():
            raise ConfigError(f"{what}: option {number} is empty; every option needs words")
        if len(option) > MAX_OPTION_CHARS:
            raise ConfigError(f"{what}: option {number} has {len(option):,} characters; at most {MAX_OPTION_CHARS:,}")


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), stopping once past ``limit`` (no recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth) for child in (current.values() if isinstance(current, dict) else current))
    return deepest


def loads_json(text: str | bytes, what: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses, as a one-line ``ValueError``, values nested deeper than ``limit`` (a line
    nested 100,000 deep would otherwise end in a RecursionError) and keeps the decoder's own message."""
    import json

    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what}: nested deeper than {limit} levels") from None
    if json_depth(value, limit) > limit:
        raise ValueError(f"{what}: nested deeper than {limit} levels")
    return value
