"""Checking open answers of the NIAVH question kinds against their gold, without a judge model.

A gold answer (written by :mod:`mmlong.benchmarks.niavh_kinds`) is one of

- ``{"type": "number", "value": k}``: the first count the reply states (digits or words, "once", "twice";
  clock times such as ``00:12`` are not counts) must be ``k``;
- ``{"type": "time", "start", "end", "length", "quarter"}``: the first claim about *when* decides: a clock time
  (``01:05``, ``1:02:05``) or seconds (``65 s``) within ``max(3 s, 2.5 % of the length)`` of the showing, or a
  named part of the video (``first``/``second``/``third``/``last`` quarter; ``beginning``/``start`` = first,
  ``end`` = last; "first half, but not at the beginning" = second, "second half, but not at the end" = third)
  equal to the gold quarter;
- ``{"type": "order", "references": [[names of the 1st], [2nd], [3rd]]}``: every one named, in that order
  (position of its first mention);
- ``{"type": "first", "references": [...], "others": [[...], ...]}``: of the candidates, the one named first in
  the reply must be the gold one (absence: the photo never shown; topic: the footage, before the distractor).

Names match as whole words after SQuAD normalisation (:func:`mmlong.benchmarks.scoring.normalize_answer`).
A reply that says it cannot answer ("the evidence does not answer this", "I cannot tell") is wrong whatever
else it names: a closest guess after a refusal is not a claim.

>>> check_open({"type": "number", "value": 3}, "It is shown 3 times, at 00:12, 00:40 and 01:10.")
True
>>> check_open({"type": "number", "value": 2}, "Twice.")
True
>>> check_open({"type": "time", "start": 61.0, "end": 63.0, "length": 240.0, "quarter": 1}, "At 01:02.")
True
>>> check_open({"type": "time", "start": 61.0, "end": 63.0, "length": 240.0, "quarter": 1}, "Near the end.")
False
>>> check_open({"type": "order", "references": [["cat"], ["rocket"], ["coffee"]]}, "A cat, then a rocket, then coffee")
True
>>> check_open({"type": "first", "references": ["rocket"], "others": [["cat"]]}, "The rocket; the cat is shown.")
True
>>> check_open({"type": "time", "start": 61.0, "end": 63.0, "length": 240.0, "quarter": 1},
...            "No moment clearly shows a cat; the evidence does not answer this. The closest match is 01:02.")
False
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mmlong.benchmarks.scoring import normalize_answer

_WORD_NUMBERS = {"zero": 0, "no": 0, "none": 0, "never": 0, "one": 1, "once": 1, "single": 1, "two": 2,
                 "twice": 2, "three": 3, "thrice": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_CLOCK = re.compile(r"\b(?:(\d+):)?(\d{1,2}):(\d{2})(?:\.\d+)?\b")
_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)\b")
_DECLINES = re.compile(r"\b(?:does not|doesn't|do not|don't|cannot|can't|can not) (?:answer|tell|say|know)\b"
                       r"|\bnot (?:sure|certain)\b|\bunable to (?:tell|answer|say)\b")
_QUARTERS = (
    (re.compile(r"\bfirst quarter\b|\bbeginning\b|\bstart\b|\bopening\b"), 0),
    (re.compile(r"\bsecond quarter\b|\bfirst half,? but not (?:at )?the (?:beginning|start)\b"), 1),
    (re.compile(r"\bthird quarter\b|\bsecond half,? but not (?:at )?the end\b"), 2),
    (re.compile(r"\b(?:last|fourth|final) quarter\b|\bthe end\b|\bending\b"), 3),
)


def first_count(text: str) -> int | None:
    """The first count a reply states: a number that is not part of a clock time, or a number word."""
    plain = _CLOCK.sub(" ", str(text).lower())
    for match in re.finditer(r"\b(\d+|[a-z]+)\b", plain):
        word = match.group(1)
        if word.isdigit():
            return int(word)
        if word in _WORD_NUMBERS:
            return _WORD_NUMBERS[word]
    return None


def time_claims(text: str) -> list[tuple[int, str, float]]:
    """``(position, kind, value)`` of each claim about when, in reply order: ``("time", seconds)`` or
    ``("quarter", 0-3)``."""
    low = str(text).lower()
    claims: list[tuple[int, str, float]] = []
    for match in _CLOCK.finditer(low):
        hours = int(match.group(1) or 0)
        claims.append((match.start(), "time", hours * 3600 + int(match.group(2)) * 60 + int(match.group(3))))
    masked = _CLOCK.sub(lambda m: " " * len(m.group(0)), low)
    for match in _SECONDS.finditer(masked):
        claims.append((match.start(), "time", float(match.group(1))))
    for pattern, quarter in _QUARTERS:
        for match in pattern.finditer(low):
            claims.append((match.start(), "quarter", float(quarter)))
    return sorted(claims)


def mention(text: str, references: Sequence[str]) -> int | None:
    """Position (in the normalised reply) of the first whole-word mention of any of ``references``."""
    pred = f" {normalize_answer(text)} "
    found = [pred.find(f" {ref} ") for ref in (normalize_answer(r) for r in references) if ref]
    found = [p for p in found if p >= 0]
    return min(found) if found else None


def declines(text: str) -> bool:
    """Whether a reply says it cannot answer (see the module docstring)."""
    return _DECLINES.search(str(text).lower()) is not None


def check_open(gold: Mapping[str, Any], text: str) -> bool:
    """Whether an open reply states the gold answer (see the module docstring)."""
    kind = gold.get("type")
    if kind not in ("number", "time", "order", "first"):
        raise ValueError(f"unknown gold type {kind!r}")
    if declines(text):
        return False
    if kind == "number":
        return first_count(text) == int(gold["value"])
    if kind == "time":
        claims = time_claims(text)
        if not claims:
            return False
        _, what, value = claims[0]
        if what == "quarter":
            return int(value) == int(gold["quarter"])
        slack = max(3.0, 0.025 * float(gold["length"]))
        return float(gold["start"]) - slack <= value <= float(gold["end"]) + slack
    if kind == "order":
        places = [mention(text, refs) for refs in gold["references"]]
        return all(p is not None for p in places) and places == sorted(places) and len(set(places)) == len(places)
    right = mention(text, gold["references"])  # "first"
    wrong = [p for p in (mention(text, refs) for refs in gold.get("others", ())) if p is not None]
    return right is not None and all(right < p for p in wrong)
