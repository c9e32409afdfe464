"""Open answers as sentences built from the evidence timeline, one per question kind.

An open question gets a sentence that answers the kind asked (:mod:`mmlong.question_kinds`), from the same
timeline and rules as multiple choice (:mod:`mmlong.models.socratic.kind_rules`):

- ``topic``: what most of the video shows (the classes that are the top label of the most time, with their
  share of the video) and what happens briefly (the rarest moments whose label differs, with their times), the
  text read and the words heard;
- ``count``: the number of separate episodes of the target and when they are (for "how many things", the
  stretches where they are seen, and that one frame's count is beyond the image classifier);
- ``when``: the target's evidence time and its part of the video ("in the first quarter", "near the end");
- ``order``: the things seen, in the order they first come (or the first thing after/before an anchor);
- ``appear`` asking what is written ("What text is on screen?"): the on-screen lines read, never a class label;
- ``duration``: the seconds of the target's episodes;
- ``yesno``: yes with the time, or no;
- ``attribute``: what the evidence can and cannot tell (an ImageNet classifier names objects, not colours);
- ``appear``: the best moment's own words, with its time.

Whenever no moment clearly shows the target (no episode of presence,
:func:`~mmlong.models.socratic.kind_rules.episodes`)
the sentence says so plainly and names the closest moment.

>>> share_phrase(0.78)
'about 78 %'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from mmlong.experts.base import format_span, format_time
from mmlong.models.socratic.grounding import line_says
from mmlong.models.socratic.kind_choice import Curves, counts_people, people_counts
from mmlong.models.socratic.segments import merge_spans
from mmlong.question_kinds import QuestionKind, list_items

#: most brief moments a summary names
BRIEF_MOMENTS = 3
#: most expert lines a summary quotes
QUOTED_LINES = 2


def share_phrase(share: float) -> str:
    return f"about {round(100 * share)} %"


def top_label(moment: Any, min_confidence: float = 0.0) -> str:
    """The most likely class of an image moment; ``""`` when its named classes together hold less probability
    than ``min_confidence`` (an ImageNet guess on footage it does not know)."""
    labels = getattr(moment, "labels", ())
    if not labels or sum(p for _, p in labels) < min_confidence:
        return ""
    return labels[0][0]


def part_of_video(t: float, duration: float) -> str:
    """Where ``t`` lies: ``"near the beginning"``, ``"in the first quarter"``, ... ``"near the end"``."""
    if duration <= 0:
        return ""
    f = t / duration
    if f < 0.08:
        return "near the beginning"
    if f > 0.92:
        return "near the end"
    return f"in the {('first', 'second', 'third', 'last')[min(3, int(f * 4))]} quarter"


def _image(curves: Curves) -> list[tuple[int, Any]]:
    """``(timeline index, moment)`` of the image moments in time order."""
    tl = curves.timeline
    return [(i, curves.moments[p]) for i, p in enumerate(tl.positions) if not bool(tl.is_text[i])]


def _said(curves: Curves, source: str) -> list[Any]:
    return [m for m in curves.moments if line_says(m) is not None and getattr(m, "source", "") == source]


def dominant(curves: Curves, count: int = 2, min_confidence: float = 0.0) -> list[tuple[str, float]]:
    """The ``count`` classes that are the top label of the most time, with their share of the image time
    (``""``: the time no class is named with ``min_confidence``)."""
    weights: dict[str, float] = {}
    total = 0.0
    for i, moment in _image(curves):
        w = float(curves.timeline.weights[i])
        total += w
        label = top_label(moment, min_confidence)
        weights[label] = weights.get(label, 0.0) + w
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])[:count]
    return [(name, w / total) for name, w in ranked] if total > 0 else []


def brief_moments(curves: Curves, rarity: torch.Tensor | None, common: set[str],
                  min_confidence: float = 0.0) -> list[tuple[str, float]]:
    """``(label, time)`` of the rarest image moments whose top label (named with ``min_confidence``) is not
    ``common`` (one per label)."""
    if rarity is None:
        return []
    picked: list[tuple[str, float]] = []
    image = _image(curves)
    order = sorted(image, key=lambda im: -float(rarity[curves.timeline.positions[im[0]]]))
    for i, moment in order:
        label = top_label(moment, min_confidence)
        if float(rarity[curves.timeline.positions[i]]) <= 0 or not label or label in common:
            continue
        if label not in {name for name, _ in picked}:
            picked.append((label, float(curves.timeline.times[i])))
        if len(picked) == BRIEF_MOMENTS:
            break
    return sorted(picked, key=lambda item: item[1])


def quote(lines: Sequence[Any]) -> str:
    return "; ".join(f'"{line.text}" ({format_time(line.start)})' for line in lines[:QUOTED_LINES])


def faint_labels(curves: Curves, min_confidence: float, count: int = 2) -> list[str]:
    """The ``count`` classes with the most probability, weighted by duration, over the image moments no class
    is named at with ``min_confidence``: the classifier's closest words for footage it does not know."""
    mass: dict[str, float] = {}
    for i, moment in _image(curves):
        if top_label(moment, min_confidence):
            continue
        for name, p in getattr(moment, "labels", ()):
            mass[name] = mass.get(name, 0.0) + float(curves.timeline.weights[i]) * float(p)
    return [name for name, _ in sorted(mass.items(), key=lambda kv: -kv[1])[:count]]


def lasting_text(curves: Curves, least_share: float = 0.3) -> tuple[str, float] | None:
    """``(text, share)`` of the on-screen text that stays longest, when it covers at least ``least_share`` of the
    video (a title card or caption that *is* most of the video), else None.

    The same card is often read differently each time (OCR misreads: "THANKSFOR WATCHINO", "YHANKS FOR
    WATCHING"): lines whose letters match at a ratio of 0.8 or more are one text, said in its most seen spelling.
    The reader keeps a line only while it reads the frames (gated frames and misreads break it), so a text's
    showings less than ``max(15 s, 5 % of the video)`` apart are one stretch on screen."""
    from difflib import SequenceMatcher

    groups: list[tuple[str, list[tuple[float, float]], dict[str, float]]] = []  # (key, spans, seconds per spelling)
    for line in _said(curves, "text"):
        key = re.sub(r"\W+", "", line.text.lower())
        span = (float(line.start), max(float(line.end), float(line.start) + 1.0))
        k = next((k for k, g in enumerate(groups) if SequenceMatcher(None, g[0], key).ratio() >= 0.8), None)
        if k is None:
            groups.append((key, [span], {}))
            k = len(groups) - 1
        groups[k][1].append(span)
        groups[k][2][line.text] = groups[k][2].get(line.text, 0.0) + span[1] - span[0]
    duration = float(curves.timeline.duration)
    if not groups or duration <= 0:
        return None
    bridge = max(15.0, 0.05 * duration)
    covered = [sum(b - a for a, b in merge_spans(spans, bridge)) for _, spans, _ in groups]
    best = max(range(len(groups)), key=lambda k: covered[k])
    share = min(1.0, covered[best] / duration)
    text = max(groups[best][2].items(), key=lambda kv: kv[1])[0]
    return (text, share) if share >= least_share else None


def summary(curves: Curves, rarity: torch.Tensor | None, min_confidence: float = 0.5,
            whole: str = "the video") -> str:
    """What most of ``whole`` (the video, or the part a question asks about) shows (a lasting on-screen text
    first; for footage the classifier does not know, its closest words), what happens briefly, the text read
    and the words heard."""
    ranked = dominant(curves, 3, min_confidence)
    unclear = sum(share for name, share in ranked if not name)
    main = [(name, share) for name, share in ranked if name][:2]
    parts = []
    lasting = lasting_text(curves)
    if lasting is not None:
        parts.append(f'Most of {whole} ({share_phrase(lasting[1])}) shows the text "{lasting[0]}" on screen.')
    if ranked:
        if unclear >= 0.5:
            faint = faint_labels(curves, min_confidence)
            closest_words = f"; the closest it comes is {' and '.join(faint)}" if faint else ""
            parts.append(f"Most of {whole} ({share_phrase(unclear)}) is nothing the image classifier recognises "
                         f"with confidence{closest_words}.")
        if main:
            shown = " and ".join(f"{name} ({share_phrase(share)})" for name, share in main)
            parts.append(f"{'Where it does, it' if unclear >= 0.5 else 'Most of ' + whole} looks like {shown}.")
        brief = brief_moments(curves, rarity, {name for name, _ in main}, min_confidence)
        if brief:
            parts.append("Briefly: " + ", ".join(f"{name} at {format_time(t)}" for name, t in brief) + ".")
    else:
        parts.append("No frame was seen.")
    for source, verb in (("text", "On screen"), ("speech", "Heard"), ("subtitle", "Subtitles")):
        lines = _said(curves, source)
        if lines:
            parts.append(f"{verb}: {quote(lines)}.")
    return " ".join(parts)


def closest(curves: Curves, target: str) -> str:
    """``"00:40 (rocket)"``: the moment most like ``target``."""
    best = curves.best(target, 1)
    if not best:
        return "nothing"
    moment = curves.moments[best[0]]
    words = line_says(moment)
    return f"{format_time(moment.centre)} ({words if words is not None else top_label(moment) or 'unclear'})"


def _times(found: Sequence[tuple[float, float]]) -> str:
    spans = [format_span(a, b) for a, b in found]
    return spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1]


def not_seen(target: str, curves: Curves) -> str:
    return (f"No moment clearly shows {target}; the evidence does not answer this. "
            f"The closest match is {closest(curves, target)}.")


def open_sentence(kind: QuestionKind, curves: Curves, rarity: torch.Tensor | None = None,
                  best_words: str = "", best_time: float | None = None, best_source: str = "",
                  min_confidence: float = 0.5) -> tuple[str, list[int]]:
    """``(sentence, evidence moment positions)`` answering an open question of ``kind``; ``best_words``,
    ``best_time``, ``best_source``: the words, time and source (``""`` for an image moment) of the moment the
    question matches best (the ``appear`` answer); ``min_confidence``: the least probability a moment's named
    classes need for a summary to name them."""
    tl = curves.timeline
    target = kind.target
    if kind.kind == "topic" or (kind.kind == "attribute" and kind.relation == "place"):
        return summary(curves, rarity, min_confidence), []
    if kind.kind == "appear" and kind.relation == "at":  # the moments of that time only (time_anchor)
        image = [float(t) for t, text in zip(tl.times, tl.is_text) if not bool(text)]
        when = format_span(min(image), max(image)) if image else kind.anchor
        said = summary(curves, None, min_confidence, "that part")
        return f"{kind.anchor[0].upper() + kind.anchor[1:]} ({when}): {said[0].lower() + said[1:]}", []
    if counts_people(kind, curves.moments):
        seen = people_counts(curves.moments)
        most = max(n for _, _, n in seen)
        a, b, _ = next(item for item in seen if item[2] == most)
        return (f"{most} {'person' if most == 1 else 'people'} at most in one frame ({format_span(a, b)}), "
                f"counted by the people expert's face and body detectors."), []
    if kind.kind == "yesno" and kind.relation in ("before", "after") and target and kind.anchor:
        yes, (a, b) = curves.sooner(target, kind.anchor, kind.relation)
        return (f"{'Yes' if yes else 'No'}: {target} is first seen at {format_time(a)}, {kind.anchor} at "
                f"{format_time(b)}."), curves.best(target, 1)
    if kind.kind in ("count", "when", "duration", "yesno") and target:
        found = curves.episodes(target)
        evidence = curves.best(target, max(1, len(found)))
        if not found:
            if kind.kind == "count" and kind.relation == "times":
                # the question takes the thing to be shown: with no showing standing out, count the showings
                # of the look most like it, and say that the match is weak
                likely = curves.likeliest(target)
                if likely:
                    n = len(likely)
                    return (f"Probably {n} time{'s' if n != 1 else ''}: nothing matches {target} clearly; what "
                            f"looks most like it is seen at {_times(likely)}."), curves.best(target, n)
                return f"Once at most: {not_seen(target, curves)}", evidence[:1]
            if kind.kind == "yesno":  # not seen is not proof of absence: say how sure
                return (f"Probably not: no moment clearly shows {target} (the closest match is "
                        f"{closest(curves, target)})."), evidence[:1]
            return not_seen(target, curves), evidence[:1]
        if kind.kind == "count" and kind.relation == "times":
            n = len(found)
            return f"{n} time{'s' if n != 1 else ''}: {target} is seen at {_times(found)}.", evidence
        if kind.kind == "count":
            return (f"At least one {target} is seen, at {_times(found)}; the image classifier cannot count how "
                    f"many are in one frame."), evidence
        if kind.kind == "when":
            t = float(tl.times[int(curves.of([target])[0].argmax())])
            where = part_of_video(t, tl.duration)
            best = next(((a, b) for a, b in found if a <= t <= b), (t, t))
            others = [span for span in found if span != best]
            also = f" Weaker matches: {_times(others)}." if others else ""
            return (f"{target.capitalize()} is seen at {format_span(*best)}, {where} of the video "
                    f"({format_time(t)} of {format_time(tl.duration)}).{also}"), evidence[:1]
        if kind.kind == "duration":
            from mmlong.models.socratic.kind_rules import episode_seconds

            seconds = episode_seconds(found, tl)
            amount = f"{seconds:.1f}".rstrip("0").rstrip(".") if seconds < 10 else f"{round(seconds)}"
            return (f"About {amount} s: {target} is seen at {_times(found)} "
                    f"({len(found)} separate stretch{'es' if len(found) != 1 else ''})."), evidence
        return f"Yes: {target} is seen at {_times(found)}.", evidence[:1]
    if kind.kind == "order":
        return order_sentence(kind, curves), []
    if kind.kind == "attribute":
        what = {"colour": "colours", "who": "who a person is", "action": "actions or reasons"}.get(
            kind.relation, kind.relation)
        return (f"The image classifier names objects, not {what}, so the evidence cannot tell this; the moment "
                f"most like {target or 'the question'} is {closest(curves, target or 'object')}."), \
            curves.best(target or "object", 1)
    named = list_items(target) if kind.kind == "absence" and target else []
    if len(named) > 1:
        least = int(curves.absent(named).argmax())
        seen = ", ".join(f"{item} ({closest(curves, item).split(' ')[0]})" for k, item in enumerate(named)
                         if k != least)
        return f"{named[least].capitalize()} is never clearly shown; the others are seen: {seen}.", \
            [p for k, item in enumerate(named) if k != least for p in curves.best(item, 1)]
    if kind.kind == "absence":
        main = ", ".join(name for name, _ in dominant(curves, 3, min_confidence) if name)
        return (f"The evidence cannot list what is not shown; the video shows mostly {main or 'nothing recognisable'}."
                ), []
    if kind.relation in ("text", "speech") and best_source != kind.relation:  # the words read or heard
        said = _said(curves, kind.relation)
        if not said:
            return ("No text was read on screen." if kind.relation == "text" else "No speech was heard."), []
        return f"{'On screen' if kind.relation == 'text' else 'Heard'}: {quote(said)}.", []
    if not best_words:
        return "Nothing in the video answers this.", []
    when = format_time(best_time) if best_time is not None else ""
    if best_source:
        verb = {"text": "On screen", "speech": "Heard", "subtitle": "In the subtitles"}.get(best_source, "Said")
        return f'{verb} at {when}: "{best_words}"', []
    return f"{best_words} (at {when})", []


def order_sentence(kind: QuestionKind, curves: Curves) -> str:
    """The things the question lists (its target) in the order they are first seen; without a list, the
    distinct top labels of the image moments in the order they first come (after/before an anchor)."""
    tl = curves.timeline
    named = list_items(kind.target) if kind.target else []
    if len(named) > 1:
        seen_named = sorted(zip(curves.firsts(named), named))
        return "First " + ", then ".join(f"{item} ({format_time(t)})" for t, item in seen_named) + "."
    start, end = 0.0, tl.duration
    if kind.anchor and kind.relation in ("after", "before"):
        found = curves.episodes(kind.anchor)
        if not found:
            return not_seen(kind.anchor, curves)
        start, end = (found[0][1], tl.duration) if kind.relation == "after" else (0.0, found[0][0])
    seen: list[tuple[str, float]] = []
    for i, moment in _image(curves):
        t = float(tl.times[i])
        label = top_label(moment)
        if label and (start < t < end or not kind.anchor) and label not in {n for n, _ in seen}:
            seen.append((label, t))
    if not seen:
        return "Nothing recognisable is seen there."
    if kind.relation == "after":
        return f"After {kind.anchor}: {seen[0][0]} ({format_time(seen[0][1])})."
    if kind.relation == "before":
        return f"Before {kind.anchor}: {seen[-1][0]} ({format_time(seen[-1][1])})."
    if kind.relation == "last":
        return f"Last: {seen[-1][0]} ({format_time(seen[-1][1])})."
    return "First " + ", then ".join(f"{name} ({format_time(t)})" for name, t in seen[:5]) + "."
