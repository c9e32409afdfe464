"""Grounded option scoring: how strongly some moment of the transcript supports each answer text.

An answer is grounded when a moment of the video says it. For every option ``o`` and transcript moment ``l``
the relevance ``r(o, l)`` is

- an **image moment** (classifier labels): ConSE (Norouzi et al. 2014, :mod:`mmlong.encoders.conse`), the
  cosine between the MiniLM embedding of ``o`` and the probability-weighted MiniLM embedding of the moment's top
  ImageNet classes (``encoder.relevance``); without a text side, the share of the class names' words in ``o``;
- a **text moment** (an expert's line: on-screen text, speech, subtitles): the larger of a normalised fuzzy
  word match (:func:`word_match`: the share of ``o``'s content words found in the line, a word counting when
  ``difflib`` finds it at least 0.8 similar, so OCR slips still count) and the MiniLM cosine of ``o`` and the line.

A moment is evidence for ``o`` when it stands out from the rest of the video, so each option's relevances are
measured against that option's typical relevance (a class like "dog" that resembles the whole haystack a little
is not evidence for "a dog")::

    prominence(o, l) = r(o, l) - median_l' r(o, l')
    support(o, l) = prominence(o, l) + w * rarity(l)          evidence(o) = max_l support(o, l)

where ``rarity(l)`` (:func:`moment_rarity`) is how much more an image moment stands apart from the rest of the
video than its typical moment does (a brief event is unlike everything outside its own few seconds,
:func:`~mmlong.scoring.frames.brief_rarity`; 0 for text moments, whose lines are brief by nature),
so the option a brief event matches best outweighs an option that some long haystack scene resembles a little
(``w = 0``: prominence alone). The moments that carry ``o`` are its lines by decreasing support
(:meth:`Grounding.moments`).

>>> word_match("a cup of coffee", "The secret word is cofee.")   # "cofee" matches "coffee"; "cup" is missing
0.5
>>> word_match("banana", "the secret word is banana")
1.0
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: words that carry no content in an option or a question
STOPWORDS = frozenset(
    "a an the of and or in on at to with by for from is are was were be it its this that what which who "
    "where when how does do did video shown shows show there some one".split()
)
#: least difflib ratio for two words to count as the same word (absorbs OCR and ASR slips)
FUZZY_WORD = 0.8


def content_words(text: str) -> list[str]:
    """Lower-case words of ``text`` without stop words, a plural ``s`` dropped (``"cats"`` -> ``"cat"``)."""
    out = []
    for word in re.findall(r"[a-z0-9]+", str(text).lower()):
        if word in STOPWORDS:
            continue
        out.append(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


def word_match(text: str, line: str) -> float:
    """Share of ``text``'s content words that occur in ``line`` (fuzzily, difflib ratio >= 0.8), in [0, 1]."""
    wanted = list(dict.fromkeys(content_words(text)))
    have = set(content_words(line))
    if not wanted or not have:
        return 0.0
    found = 0
    for word in wanted:
        if word in have or any(difflib.SequenceMatcher(None, word, w).ratio() >= FUZZY_WORD for w in have):
            found += 1
    return found / len(wanted)


def line_says(line: Any) -> str | None:
    """The words of a text moment (an expert's :class:`~mmlong.experts.base.TimedText`: on-screen text,
    speech, subtitles), ``None`` for an image moment."""
    if getattr(line, "source", None) is None:
        return None
    return str(line.text)


def moment_text(line: Any) -> str:
    """How a moment reads in the transcript (``00:29: espresso 0.27, cup 0.17`` or ``00:29 [text] "..."``)."""
    return line.render() if line_says(line) is not None else line.text()


def name_overlap(lines: Sequence[Any], text: str) -> torch.Tensor:
    """``[L]`` per image line: sum over its classes of probability x the share of the class name's words in
    ``text`` (the fallback relevance for an encoder without a text side)."""
    wanted = set(content_words(text))
    scores = []
    for line in lines:
        score = 0.0
        for name, prob in getattr(line, "labels", ()):
            words = set(content_words(name))
            if words:
                score += prob * len(words & wanted) / len(words)
        scores.append(score)
    return torch.tensor(scores, dtype=torch.float64)


def moment_relevance(lines: Sequence[Any], texts: Sequence[str], encoder: Any) -> tuple[torch.Tensor, str]:
    """``([Q, L] relevance of each text to each moment, method)``; method names the image-moment measure
    (``"conse"`` or ``"name-overlap"``)."""
    q, n = len(texts), len(lines)
    rel = torch.zeros(q, n, dtype=torch.float64)
    if not q or not n:
        return rel, "none"
    image = [i for i, line in enumerate(lines) if line_says(line) is None]
    spoken = [i for i in range(n) if i not in set(image)]
    method = "name-overlap"
    text_side = encoder is not None and encoder.has_text
    if image:
        feats = [getattr(lines[i], "feature", None) for i in image]
        if text_side and all(f is not None for f in feats):
            try:
                rel[:, image] = encoder.relevance(torch.stack(feats), list(texts)).double().cpu()
                method = "conse"
            except NotImplementedError:
                text_side = False
        if method != "conse":
            for k, text in enumerate(texts):
                rel[k, image] = name_overlap([lines[i] for i in image], text)
    if spoken:
        said = [line_says(lines[i]) or "" for i in spoken]
        match = torch.tensor([[word_match(t, s) for s in said] for t in texts], dtype=torch.float64)
        if text_side:
            embedded = encoder.encode_text(list(texts) + said).double().cpu()
            cosine = embedded[:q] @ embedded[q:].T
            match = torch.maximum(match, cosine)
        rel[:, spoken] = match
    return rel, method


def moment_rarity(lines: Sequence[Any], window: float) -> torch.Tensor:
    """``[L]`` per moment: an image moment's :func:`~mmlong.scoring.frames.brief_rarity` (feature
    cosine, ``window`` s) minus the median over the image moments (0 for text moments, and for every moment
    when fewer than three image moments carry features)."""
    from mmlong.scoring.frames import brief_rarity

    rarity = torch.zeros(len(lines), dtype=torch.float64)
    image = [i for i, line in enumerate(lines)
             if line_says(line) is None and getattr(line, "feature", None) is not None]
    if len(image) < 3:
        return rarity
    features = torch.stack([lines[i].feature.flatten() for i in image])
    times = torch.tensor([float(lines[i].centre) for i in image], dtype=torch.float64)
    brief = brief_rarity(features, times, window)
    rarity[image] = brief - brief.median()
    return rarity


@dataclass(frozen=True)
class Grounding:
    """Relevance of Q texts to L moments: ``relevance [Q, L]``, ``prominence [Q, L]`` (relevance minus each
    text's median over moments), ``support [Q, L]`` (prominence plus the weighted rarity of the moment),
    ``evidence [Q]`` (max support), and the image-moment ``method``."""

    relevance: torch.Tensor
    prominence: torch.Tensor
    support: torch.Tensor
    evidence: torch.Tensor
    method: str

    def moments(self, index: int, count: int) -> list[int]:
        """Positions of the ``count`` moments that carry text ``index``, best supported first (only moments
        above that text's median; the best one always)."""
        row = self.support[index]
        order = sorted(range(row.shape[0]), key=lambda i: (-float(row[i]), i))
        keep = [i for rank, i in enumerate(order) if rank == 0 or float(row[i]) > 0.0]
        return keep[:max(0, count)]


def ground(lines: Sequence[Any], texts: Sequence[str], encoder: Any, rarity: torch.Tensor | None = None,
           rarity_weight: float = 0.0) -> Grounding:
    """Score ``texts`` (options, or a question) against transcript ``lines`` (see the module docstring);
    ``rarity [L]``: :func:`moment_rarity` of the lines, added to every text's prominence at ``rarity_weight``."""
    rel, method = moment_relevance(lines, texts, encoder)
    if rel.shape[1] == 0:
        zeros = torch.zeros(rel.shape[0], dtype=torch.float64)
        return Grounding(rel, rel.clone(), rel.clone(), zeros, method)
    prominence = rel - rel.median(dim=1, keepdim=True).values
    support = prominence if rarity is None or rarity_weight == 0 else prominence + rarity_weight * rarity.double()
    return Grounding(rel, prominence, support, support.max(dim=1).values, method)
