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

from mmlong.question_words import list_items, named_list, normalise, phrase, split_items, thing

__all__ = ["HOLISTIC", "KINDS", "QuestionKind", "WHOLE_TIMELINE", "list_items", "phrase", "split_items",
           "understand"]

KINDS = ("appear", "topic", "count", "order", "when", "absence", "duration", "attribute", "yesno")
#: kinds whose answer weighs the whole timeline (the sampler covers the video uniformly for them)
HOLISTIC = frozenset({"topic"})
#: kinds that need every appearance of a target over the whole video
WHOLE_TIMELINE = frozenset({"topic", "count", "duration"})

_VIDEO = r"(?:video|clip|footage|movie|film|recording)"
_NEGATION = re.compile(r"\b(never|not|n't|except|isn't|wasn't|aren't|weren't|doesn't|don't|didn't|absent|"
                       r"missing|without|none of|nowhere|left out|cannot|all but one|odd one out)\b|n't\b")
#: a question asking what is written or shown as text (``appear`` with relation ``text``)
_READ = re.compile(r"\bwhat (?:text|words?|writing|caption|title|letters)\b"
                   r"|\bwhat\b.*\b(?:written|printed|displayed as text)\b"
                   r"|\bwhat does (?:the |a |this )?(?:sign|card|caption|screen|text|banner|title|poster|label|note|"
                   r"board|"
                   r"whiteboard|placard|headline|menu|notice|plaque|page|letter|subtitle)\b.*\b(?:say|read)\b"
                   r"|\bname of the \w+ (?:shown |written )?on (?:the |a )?(?:sign|card|banner|screen)\b")
_COUNT = re.compile(r"\bhow many\b|\bhow (?:often|frequently)\b|\bnumber of\b|\bhow much times\b|\bcount\b")
#: the episodes a counting question counts ("how many scenes show X", "the number of appearances of X")
_EPISODES = re.compile(r"\b(?:how many|number of|count(?: of)?(?: the)?)\s+(?:separate |distinct |different |"
                       r"individual )?(?:times|scenes|shots|occasions|instances|moments|appearances|occurrences|"
                       r"showings|sightings|entrances|segments)\b(.*)")
_ORDER = re.compile(r"\border\b|\bsequence\b|\bchronolog|\bwhat (happens|is shown|comes|appears) (first|last)\b|"
                    r"\b(first|last|earliest|latest)\b.*\b(shown|seen|appear|happen|come)|"
                    r"\b(comes?|happens?|appears?|shown|seen)\s+(first|last)\b|"
                    r"^(what|which)\b.*\b(right |just |immediately )?(after|before)\b|"
                    r"^(which|what|who)\b.*\b(first|earliest|earlier|last|latest|later)\b|"
                    r"^(what|which)\b.*\b(shown|seen|appears?|visible|on screen)\b.*\bat the (very )?(end|start|"
                    r"beginning)\b|"
                    r"^(?:right |just |immediately )?(?:after|before|following)\b.+,\s*(?:what|which|who)\b")
#: cues that make a question a "when" question whatever else it says
_WHEN_START = r"^\s*(?:(?:roughly|approximately|about|exactly|so|and|but|ok|okay|also|then)\s*,?\s+)?when\b"
_WHEN_FIRST = re.compile(_WHEN_START + r"|\btell me when\b|\b(?:start|beginning|middle|end|half|quarter|third)\b[^?]*"
                         r"\bor\b[^?]*\b(?:start|beginning|middle|end|half|quarter|third)\b")
#: "which part", "what moment", ... of the video; "where in the clip"
_PART = (r"\b(which|what) (part|portion|section|point|moment|time|timestamp|minute|second|quarter|half|third|segment|"
         r"stage)\b")
_WHERE_IN = r"\b(?:where|whereabouts) in the " + _VIDEO + r"\b"
_WHEN = re.compile(_WHEN_START + r"|\bat what (time|point|moment)\b|" + _PART + r"|\bhow far (?:into|through|in)\b|"
                   + _WHERE_IN + r"|\btell me when\b")
#: the words of a when question that are not its target (removed before the target is read)
_WHEN_CUE = re.compile(_WHEN_START + r"|\btell me when\b|\bat what (time|point|moment)\b|(?:\b(?:in|during|at|on) )?"
                       + _PART + r"( of the video)?\b|\bhow far (?:into|through|in) the video\b|" + _WHERE_IN)
_DURATION = re.compile(r"\bhow long\b|\blongest\b|\bshortest\b|\bhow many (?:seconds|minutes)\b|\bmost screen time\b|"
                       r"\b(?:most|least|greatest|largest|smallest|shortest) (?:amount of )?(?:screen )?time\b|"
                       r"\bon screen the (?:most|least)\b|\bthe (?:most|least) on screen\b|\bmost briefly\b|"
                       r"\bbriefest\b|\bduration of\b|\bscreen time of\b|\btime on screen of\b")
#: a time or part of the video a question asks about ("at the end", "at 00:30", "in the first minute")
_AT_TIME = re.compile(r"\b(?:at|around|near|towards?|in|during|by)\s+(?:the\s+)?(?:very\s+)?(?:"
                      r"\d{1,2}:\d{2}(?::\d{2})?|(?:beginning|start|opening|middle|end|ending|close|finish)"
                      r"(?:\s+of\s+the\s+" + _VIDEO + r")?|(?:first|last|final|second|third)\s+(?:quarter|half|third|"
                      r"minute|\d+\s+seconds?))\b")
_SHORT = re.compile(r"\bshortest\b|\bleast\b|\bsmallest\b|\bbriefest\b|\bmost briefly\b")
_TOPIC = re.compile(r"\bmostly\b|\bmainly\b|\bmost of (the|this) (video|clip|footage|time)\b|"
                    r"\bprimarily\b|\bmain (topic|subject|theme|idea|content|focus|event|steps|"
                    r"background|setting|scene)\b|\bwhat is (this|the) " + _VIDEO + r" (mostly |mainly )?about\b|"
                    r"\bsummar|\boverall\b|\bsetting\b|\bgenre\b|\bwhat (kind|type|sort) of " + _VIDEO + r"\b|"
                    r"\btheme\b|\bsynopsis\b|\bwhat happens in (this|the) " + _VIDEO + r"\b|\btake place\b|"
                    r"\bwhat is going on\b|\bwhat does (this|the) " + _VIDEO + r" show\b|\bas a whole\b|"
                    r"\bdescribe\b.*\b(this|the) " + _VIDEO + r"\b|\bdescribes? (this|the) " + _VIDEO + r"\b|"
                    r"\bwhat (this|the) " + _VIDEO + r" is (mostly |mainly )?about\b|\boverarching\b|"
                    r"\bcentral (idea|message|topic|point)\b|"
                    r"\bwhere (is|was) (this|the) " + _VIDEO + r" (set|filmed|recorded|shot)\b|"
                    r"\b(story|plot|purpose|point|goal|gist|rundown|overview|recap) of (this|the) " + _VIDEO + r"\b|"
                    r"\bprimary (objective|goal|purpose|aim|focus)\b|\bin (one|a few|two|three) sentences?\b|"
                    r"\bdescription of (this|the) " + _VIDEO + r"\b|"
                    r"\bwhat (kind|type|sort) of (place|location|environment|event|activity)\b")
_ATTRIBUTE = (("colour", re.compile(r"\bcolou?rs?\b|\bhues?\b")),
              ("place", re.compile(r"^\s*where\b|\bwhat (place|location)\b|\bin what (place|location)\b")),
              ("who", re.compile(r"^\s*who\b|\bwhich person\b")),
              ("action", re.compile(r"\bdoing\b|^\s*why\b")))
#: what is said aloud ("what is said in the video", "what does the man say")
_SAID = re.compile(r"\bwhat (?:is|was|are|were|gets|got) (?:being )?(?:said|spoken|heard|sung)\b|"
                   r"\bwhat do(?:es)? .+ (?:say|sing|shout|ask)\b")
_YESNO = re.compile(r"^\s*(is|are|was|were|does|do|did|can|could|has|have|had|any)\b")
_YES_NO_OPTIONS = frozenset({"yes", "no"})
#: "X, yes or no?", "true or false: X"
_YESNO_FRAME = re.compile(r"^\s*(?:true or false|yes or no)\s*[:,.]?\s*|"
                          r"[,.;:]?\s*(?:yes or no|true or false|or not)\s*\??$")
#: a statement, then a short question about it ("the penguin shows up several times. how many?")
_TAIL = re.compile(r"^(?P<said>.+?)[.,;:!?]\s*(?:so |and |exactly |roughly |about |then )?(?P<ask>how many|how often|"
                   r"when|how long)(?: times)?\s*\??\s*$")
_SHOWING = re.compile(r"\b(times|appear\w*|show\w*|seen|visible|pops? up|comes? up|turns? up)\b")


@dataclass(frozen=True)
class QuestionKind:
    """What a question asks: ``kind`` (one of :data:`KINDS`), its ``target`` (the thing asked about; ``""`` when
    the options are the things compared), ``relation`` (count: ``times``/``things``; order: ``first``/``last``/
    ``after``/``before``; duration: ``longest``/``shortest``/``length``; attribute: ``colour``/``place``/``who``/
    ``action``; appear: ``text`` for what is written, ``speech`` for what is said, ``at`` for what appears at a
    time) and ``anchor`` (the thing a before/after question refers to, or the time an ``at`` question names)."""

    kind: str
    target: str = ""
    relation: str = ""
    anchor: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for people: ``count (times) of "cup of coffee"``."""
        if self.relation == "at":  # appear (at the end) of "animal"
            out = f"{self.kind} ({self.anchor})" + (f' of "{self.target}"' if self.target else "")
            return out
        out = self.kind + (f" ({self.relation})" if self.relation else "")
        if self.target:
            out += f' of "{self.target}"'
        if self.anchor:
            out += f' relative to "{self.anchor}"'
        return out


def _after(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return text[match.end():] if match else ""


def _count_target(q: str) -> tuple[str, str]:
    """``(target, relation)`` of a counting question."""
    episodes = _EPISODES.search(q)  # "how many scenes show X", "count the appearances of X", "how many times is X"
    if episodes and (target := thing(episodes.group(1))):
        return target, "times"
    if re.search(r"\bhow (?:often|frequently)\b", q):
        return thing(_after(r"\bhow (?:often|frequently)\b", q)), "times"
    return thing(_after(r"\b(?:how many|number of|count(?: the)?)\s+", q)), "things"


def _duration(q: str) -> QuestionKind:
    relation = "shortest" if _SHORT.search(q) else "longest" if re.search(r"\b(longest|most|greatest|largest)\b", q) \
        else "length"
    cue = r"\bhow long\b|\bhow many (?:seconds|minutes)\b|\b(?:duration|screen time|time on screen) of\b"
    return QuestionKind("duration", thing(_after(cue, q)) if relation == "length" else "", relation)


def _order_relation(q: str) -> tuple[str, str]:
    """``(relation, anchor)`` of an order question."""
    lead = re.match(r"^(?:right |just |immediately )?(after|before|following)\s+(.+?),\s*(?:what|which|who)\b", q)
    if lead:  # "following the appearance of the kite, which object is shown next?"
        return ("before" if lead.group(1) == "before" else "after",
                thing(re.sub(r"\b(?:appearance|showing|sight) of\b", " ", lead.group(2))))
    rel = re.search(r"\b(after|before)\b(.*)", q)
    if rel and re.match(r"^\s*(what|which)\b", q):
        return rel.group(1), phrase(rel.group(2))
    q = re.sub(r"\b(?:from )?(?:first|start|beginning|earliest) to (?:last|finish|end|latest)\b", " ", q)
    if re.search(r"\b(last|latest|final|later)\b|\bat the (very )?end\b", q):
        return "last", ""
    if re.search(r"\b(first|earliest|earlier)\b|\bat the (very )?(start|beginning)\b", q) and "order" not in q:
        return "first", ""
    return "", ""


def _order_things(q: str) -> str:
    """The things an order question names itself (``"in which order do a cat, coffee and a rocket appear"``
    -> ``"cat, coffee and a rocket"``, ``"what comes first, a or b?"`` -> ``"a or b"``), ``""`` when it names
    none."""
    return named_list(q, r"\b(?:do|does|did|are|were|is)\s+(.+?)\s+(?:appear\w*|shown|seen|come\w*|show up|"
                         r"happen\w*)\b",
                      r"\border (?:that |in which |which )?(.+?)\s+(?:are |is |were |was )?(?:appear\w*|shown|seen|"
                      r"come\w*|show up|happen\w*)\b",  # "tell me the order a, b and c are seen in"
                      r"\b(?:first|earliest|earlier|last|latest|later)\b[^,]*,\s*(.+)$")


def _absence_things(q: str) -> str:
    """The candidates a negation question lists (``"which of a cat, coffee or a rocket is never shown"``)."""
    return named_list(q, r"\b(?:which|what) (?:one )?of\s+(.+?)\s+(?:is|are|was|were|does|do|did|has|have|never|"
                         r"doesn't|does not|isn't|is not|can't|cannot)\b",
                      r"^\s*(?:exactly )?one of\s+(.+?)\s+(?:is|are|was|were|does|do|did|has|have|never|"
                      r"doesn't|does not|isn't|is not)\b")  # "one of A, B or C never shows up. which one?"


def _is_order_option(option: str) -> bool:
    return len(split_items(option)) > 1


def _framed(q: str, opts: list[str]) -> QuestionKind | None:
    """A statement with a short question after it (``"the penguin shows up several times. how many?"``, ``"a
    dolphin appears, yes or no?"``, ``"true or false: ..."``), or None."""
    tail = _TAIL.match(q)
    if tail:
        said, ask = tail.group("said"), tail.group("ask")
        if ask == "when":
            return QuestionKind("when", thing(said))
        if ask == "how long":
            return QuestionKind("duration", thing(said), "length")
        times = _SHOWING.search(said) or ask == "how often" or q.rstrip(" ?").endswith("times")
        return QuestionKind("count", thing(said), "times" if times else "things")
    if _YESNO_FRAME.search(q) and set(opts) <= _YES_NO_OPTIONS:
        return QuestionKind("yesno", thing(_YESNO_FRAME.sub(" ", q)))
    return None


def understand(question: str, options: Sequence[str] = ()) -> QuestionKind:
    """The :class:`QuestionKind` of ``question`` (with its multiple-choice ``options``, if any).

    Chat spellings are made plain first (:func:`~mmlong.question_words.normalise`). Rules by precedence: a
    statement with a short question after it, "how many seconds/minutes" (duration), counting, a "when"
    question (also one offering parts of the video: "at the start or the end"), order (the question's words,
    or options that each name several things in sequence), absence (a negation), duration, when, topic,
    yes/no, attribute; else ``appear``.
    """
    q = normalise(question)
    opts = [str(o).strip().lower() for o in options]
    framed = _framed(q, opts)
    if framed is not None:
        return framed
    if re.search(r"\bhow many (?:seconds|minutes)\b", q):
        return _duration(q)
    if _COUNT.search(q):
        target, relation = _count_target(q)
        return QuestionKind("count", target, relation)
    asks_when = not re.match(_WHEN_START + r"[^,]*,\s*(?:what|which|who|where|how|why)\b", q)  # "when X, what ..."
    if asks_when and (_WHEN_FIRST.search(q) or _WHEN.search(q)):
        return QuestionKind("when", thing(_WHEN_CUE.sub(" ", q)))
    at = _AT_TIME.search(q)
    if at and re.search(r"\d|quarter|half|third|minute|second", at.group(0)) and re.match(r"\s*(what|which)\b", q):
        return _at_time(q, at, opts)  # "what is shown in the first quarter?": not an order question
    if _ORDER.search(q) or (len(opts) > 1 and all(_is_order_option(o) for o in opts)):
        relation, anchor = _order_relation(q)
        return QuestionKind("order", "" if opts else _order_things(q), relation, anchor)
    if _NEGATION.search(q):
        return QuestionKind("absence", "" if opts else _absence_things(q) or phrase(re.sub(_NEGATION, " ", q)))
    if _DURATION.search(q):
        return _duration(q)
    if _TOPIC.search(q):
        return QuestionKind("topic")
    if _YESNO.search(q) and (not opts or set(opts) <= _YES_NO_OPTIONS):
        body = re.sub(_YESNO, " ", q)
        rel = re.search(r"\b(before|after)\b(.+)$", body)
        if rel:  # "does the cat appear before the rocket?": which is first seen
            return QuestionKind("yesno", thing(body[:rel.start()]), rel.group(1), thing(rel.group(2)))
        return QuestionKind("yesno", thing(body))
    for relation, pattern in _ATTRIBUTE:
        if pattern.search(q):
            return QuestionKind("attribute", thing(re.sub(pattern, " ", q)), relation)
    if _READ.search(q):  # "what text is on screen", "what is written", "what does the sign say"
        return QuestionKind("appear", "" if opts else phrase(q), "text")
    if _SAID.search(q):  # "what is said in the video": the words heard
        return QuestionKind("appear", "" if opts else phrase(q), "speech")
    if at:  # "what happens at the end?", "what is shown at 00:30?": what appears then
        return _at_time(q, at, opts)
    return QuestionKind("appear", "" if opts else phrase(q))


def _at_time(q: str, at: re.Match[str], opts: Sequence[str]) -> QuestionKind:
    """An ``appear`` question about the time ``at`` names (relation ``at``, the time phrase as anchor)."""
    target = "" if opts else thing(q[:at.start()] + " " + q[at.end():])
    return QuestionKind("appear", "" if target in ("we", "you", "i", "they", "one") else target, "at",
                        at.group(0).strip())
