"""What a question about a video asks: its kind and its target, decided from the words alone.

Benchmarks of long-video QA ask far more than "what appears": MLVU's dev tasks are topic reasoning, anomaly
recognition, needle QA, ego reasoning, plot QA, action order and action count; Video-MME's task types include
counting, temporal perception and information synopsis. An answerer that treats every question as "which
option matches the most salient moment" fails most of them, so the kind is decided first and each kind has its
own answer rule (:mod:`mmlong.models.socratic.kind_rules`) and its own frame choice (the coverage sampler).

Kinds (:data:`KINDS`):

- ``appear``: what is shown, written or said (the default; a needle question);
- ``topic``: what the video is mostly about, a summary, its setting (holistic: the whole timeline counts);
- ``count``: how many times something is shown, or how many things (``relation``: ``times`` or ``things``);
- ``order``: in which order things come (``relation`` ``first``/``last``, or ``after``/``before`` an
  ``anchor``);
- ``when``: the part of the video, the time, before/after something;
- ``absence``: what is *not* shown ("never", "not", "except", "which does not");
- ``duration``: how long something is shown, or which is shown the longest/shortest;
- ``attribute``: a colour, a place, who (``relation`` names which);
- ``yesno``: whether something is shown.

>>> understand("How many separate times is a cup of coffee shown?").to_dict()
{'kind': 'count', 'target': 'cup of coffee', 'relation': 'times', 'anchor': ''}
>>> understand("When is the rocket shown?", ("in the first quarter", "near the end")).target
'rocket'
>>> understand("Which of these is never shown?", ("a cat", "a rocket")).kind
'absence'
>>> understand("What is this video mostly about?").kind
'topic'
>>> understand("What is shown right after the cat?", ("a rocket", "coffee")).to_dict()
{'kind': 'order', 'target': '', 'relation': 'after', 'anchor': 'cat'}
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Sequence

KINDS = ("appear", "topic", "count", "order", "when", "absence", "duration", "attribute", "yesno")
#: kinds whose answer weighs the whole timeline (the sampler covers the video uniformly for them)
HOLISTIC = frozenset({"topic"})
#: kinds that need every appearance of a target over the whole video
WHOLE_TIMELINE = frozenset({"topic", "count", "duration"})

_NEGATION = re.compile(r"\b(never|not|n't|except|isn't|wasn't|aren't|weren't|doesn't|don't|didn't|absent|"
                       r"missing|without|none of)\b|n't\b")
#: a question asking what is written or shown as text (``appear`` with relation ``text``)
_READ = re.compile(r"\bwhat (?:text|words?|writing|caption|title|letters)\b"
                   r"|\bwhat\b.*\b(?:written|printed|displayed as text)\b"
                   r"|\bwhat does (?:the |a |this )?(?:sign|card|caption|screen|text|banner|title)\b.*\bsay\b")
_COUNT = re.compile(r"\bhow many\b|\bhow often\b|\bnumber of\b|\bhow much times\b|\bcount\b")
_ORDER = re.compile(r"\border\b|\bsequence\b|\bchronolog|\bwhat (happens|is shown|comes|appears) (first|last)\b|"
                    r"\b(first|last|earliest|latest)\b.*\b(shown|seen|appear|happen|come)|"
                    r"\b(comes?|happens?|appears?|shown|seen)\s+(first|last)\b|"
                    r"^(what|which)\b.*\b(right |just |immediately )?(after|before)\b")
_WHEN = re.compile(r"^\s*when\b|\bat what (time|point|moment)\b|\b(which|what) (part|portion|section|point|"
                   r"moment|time)\b|\bhow far into\b|\bwhere in the video\b")
_DURATION = re.compile(r"\bhow long\b|\blongest\b|\bshortest\b|\bfor how many seconds\b|\bmost screen time\b")
_TOPIC = re.compile(r"\bmostly\b|\bmainly\b|\bmost of (the|this) (video|clip|footage|time)\b|"
                    r"\bprimarily\b|\bmain (topic|subject|theme|idea|content|focus|event|"
                    r"background|setting|scene)\b|\bwhat is (this|the) (video|clip) (mostly |mainly )?about\b|\bsummar|"
                    r"\boverall\b|\bsetting\b|\bgenre\b|\bwhat kind of video\b|\btheme\b|\bsynopsis\b|"
                    r"\bwhat happens in (this|the) video\b|\bdescribe (this|the) video\b|\btake place\b|"
                    r"\bwhat is going on\b|\bwhat does (this|the) video show\b|"
                    r"\bdescribe (the )?(content|contents|gist) of (this|the) (video|clip)\b|"
                    r"\bdescribe what (this|the) (video|clip) (shows|is about)\b")
_ATTRIBUTE = (("colour", re.compile(r"\bcolou?rs?\b")),
              ("place", re.compile(r"^\s*where\b|\bwhat (place|location)\b|\bin what place\b")),
              ("who", re.compile(r"^\s*who\b|\bwhich person\b")))
_YESNO = re.compile(r"^\s*(is|are|was|were|does|do|did|can|could|has|have|had)\b")
_YES_NO_OPTIONS = frozenset({"yes", "no"})

#: words dropped around a target phrase
_FILLER = frozenset(
    "a an the this that these those there here is are was were be been being it its of in on at to into "
    "video clip footage shown show shows seen see appear appears appeared visible does do did what which who "
    "how many times time separate different distinct often number much when where whom ever any some "
    "anything something does somebody someone briefly first last later earlier point moment part quarter "
    "screen scene can could has have had".split()
)


@dataclass(frozen=True)
class QuestionKind:
    """What a question asks: ``kind`` (one of :data:`KINDS`), its ``target`` (the thing asked about; ``""`` when
    the options are the things compared), ``relation`` (count: ``times``/``things``; order: ``first``/``last``/
    ``after``/``before``; duration: ``longest``/``shortest``/``length``; attribute: ``colour``/``place``/``who``)
    and ``anchor`` (the thing a before/after question refers to)."""

    kind: str
    target: str = ""
    relation: str = ""
    anchor: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for people: ``count (times) of "cup of coffee"``."""
        out = self.kind + (f" ({self.relation})" if self.relation else "")
        if self.target:
            out += f' of "{self.target}"'
        if self.anchor:
            out += f' relative to "{self.anchor}"'
        return out


def phrase(text: str) -> str:
    """``text`` without filler words at its ends (``"is a cup of coffee shown"`` -> ``"cup of coffee"``)."""
    words = re.findall(r"[a-z0-9']+", str(text).lower())
    while words and words[0] in _FILLER:
        words.pop(0)
    while words and words[-1] in _FILLER:
        words.pop()
    return " ".join(words)


def _after(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return phrase(text[match.end():]) if match else ""


def _count_target(q: str) -> tuple[str, str]:
    """``(target, relation)`` of a counting question."""
    episodes = re.search(r"\b(?:appearances|occurrences|showings|instances|sightings)\s+of\b(.*)", q)
    if episodes:  # "count the appearances of a tower", "the number of occurrences of X"
        return phrase(re.split(r"\b(in|during|throughout)\b", episodes.group(1))[0]), "times"
    made = re.search(r"\bhow many\s+(?:separate\s+|distinct\s+|different\s+)?(?:appearances|entrances|showings|"
                     r"sightings)\s+(?:does|do|did|will)\s+(.+?)\s+(?:make|have|get)\b", q)
    if made:  # "how many separate appearances does a horse make"
        return phrase(made.group(1)), "times"
    times = re.search(r"\bhow many\b.*\btimes\b|\bhow often\b|\bnumber of times\b", q) is not None
    if times:
        target = _after(r"\btimes\b|\bhow often\b", q)
        target = re.split(r"\b(shown|seen|appear\w*|visible|happen\w*)\b", target)[0]
        return phrase(target), "times"
    match = re.search(r"\b(?:how many|number of|count(?: the)?)\s+(.*)", q)
    target = match.group(1) if match else ""
    target = re.split(r"\b(are|is|were|was|do|does|did|can|in|on|appear\w*)\b", target)[0]
    return phrase(target), "things"


def _when_target(q: str) -> str:
    q = re.sub(r"^\s*when\b|\bat what (time|point|moment)\b|\b(which|what) (part|portion|section|point|moment|time)"
               r"( of the video)?\b|\bhow far into the video\b|\bwhere in the video\b", " ", q)
    q = re.split(r"\b(shown|seen|appear\w*|visible|happen\w*|come\w* up|show up|said|spoken|written)\b", q)[0]
    return phrase(q)


def _order_relation(q: str) -> tuple[str, str]:
    """``(relation, anchor)`` of an order question."""
    rel = re.search(r"\b(after|before)\b(.*)", q)
    if rel and re.match(r"^\s*(what|which)\b", q):
        return rel.group(1), phrase(rel.group(2))
    if re.search(r"\b(last|latest|final)\b", q):
        return "last", ""
    if re.search(r"\b(first|earliest)\b", q) and "order" not in q:
        return "first", ""
    return "", ""


def _order_things(q: str) -> str:
    """The things an order question names itself (``"in which order do a cat, coffee and a rocket appear"``
    -> ``"cat, coffee and a rocket"``), ``""`` when it names none."""
    if ":" in q:
        named = q.split(":", 1)[1]
    else:
        match = re.search(r"\b(?:do|does|did|are|were|is)\s+(.+?)\s+(?:appear\w*|shown|seen|come\w*|show up|"
                          r"happen\w*)\b", q)
        named = match.group(1) if match else ""
    named = named.strip(" ?.!")
    return named if len(list_items(named)) > 1 else ""


def _absence_things(q: str) -> str:
    """The candidates a negation question lists (``"which of a cat, coffee or a rocket is never shown"``)."""
    if ":" in q:
        named = q.split(":", 1)[1]
    else:
        match = re.search(r"\b(?:which|what) (?:one )?of\s+(.+?)\s+(?:is|are|was|were|does|do|did|has|have)\b", q) \
            or re.search(r"^\s*(?:exactly )?one of\s+(.+?)\s+(?:is|are|was|were|does|do|did|has|have|never|"
                         r"doesn't|does not|isn't|is not)\b", q)  # "one of A, B or C never shows up. which one?"
        named = match.group(1) if match else ""
    named = named.strip(" ?.!")
    return named if len(list_items(named)) > 1 else ""


def list_items(text: str) -> list[str]:
    """The things a question lists: ``"a cat, coffee and a rocket"`` -> ``["a cat", "coffee", "a rocket"]``."""
    return [p.strip() for p in re.split(r"\s*(?:,\s*and\b|,|;|\band\b|\bor\b)\s*", text) if p and p.strip()]


def _is_order_option(option: str) -> bool:
    return len(split_items(option)) > 1


def split_items(option: str) -> list[str]:
    """The things an order option names, in its order: ``"a cat, then coffee"`` -> ``["a cat", "coffee"]``.

    >>> split_items("rocket -> a cat -> coffee")
    ['rocket', 'a cat', 'coffee']
    """
    parts = re.split(r"\s*(?:,\s*(?:and\s+)?then\b|\bthen\b|->|\u2192|,\s*and\b|,|;|\bfollowed by\b|\band then\b)\s*",
                     str(option).strip().rstrip("."))
    return [p.strip() for p in parts if p and p.strip()]


def understand(question: str, options: Sequence[str] = ()) -> QuestionKind:
    """The :class:`QuestionKind` of ``question`` (with its multiple-choice ``options``, if any).

    Rules by precedence: counting, then order (the question's words, or options that each name several things
    in sequence), absence (a negation), duration, when, topic, yes/no, attribute; else ``appear``.
    """
    q = " ".join(str(question).lower().split())
    opts = [str(o).strip().lower() for o in options]
    if _COUNT.search(q):
        target, relation = _count_target(q)
        return QuestionKind("count", target, relation)
    if _ORDER.search(q) or (len(opts) > 1 and all(_is_order_option(o) for o in opts)):
        relation, anchor = _order_relation(q)
        return QuestionKind("order", "" if opts else _order_things(q), relation, anchor)
    if _NEGATION.search(q):
        return QuestionKind("absence", "" if opts else _absence_things(q) or phrase(re.sub(_NEGATION, " ", q)))
    if _DURATION.search(q):
        relation = "longest" if "longest" in q or "most screen" in q else "shortest" if "shortest" in q else "length"
        target = "" if relation != "length" else phrase(re.split(r"\b(shown|seen|visible|on screen)\b",
                                                                  _after(r"\bhow long\b", q))[0])
        return QuestionKind("duration", target, relation)
    if _WHEN.search(q):
        return QuestionKind("when", _when_target(q))
    if _TOPIC.search(q):
        return QuestionKind("topic")
    if _YESNO.search(q) and (not opts or set(opts) <= _YES_NO_OPTIONS):
        body = re.sub(_YESNO, " ", q)
        body = re.split(r"\b(shown|seen|visible|in the video|appear\w*)\b", body)[0]
        return QuestionKind("yesno", phrase(body))
    for relation, pattern in _ATTRIBUTE:
        if pattern.search(q):
            target = phrase(re.sub(pattern, " ", q))
            return QuestionKind("attribute", target, relation)
    if _READ.search(q):  # "what text is on screen", "what is written", "what does the sign say"
        return QuestionKind("appear", "" if opts else phrase(q), "text")
    return QuestionKind("appear", "" if opts else phrase(q))
