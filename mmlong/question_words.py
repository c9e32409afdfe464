"""The words of a question about a video: chat spellings made plain, the name of the thing asked about, the
things a question or an option lists.

People type questions as they talk ("whats shown at the end", "do u see a kite anywhere", "which of these
isnt in the vid"), and a question names its thing inside a clause ("how many times can you spot a lantern",
"does the video contain a waterfall"). The answer rules match the thing's *name* against the evidence, so the
name must come alone: ``"lantern"``, ``"waterfall"``, not ``"you spot a lantern"``.

>>> normalise("whats shown at the end of the vid pls")
'what is shown at the end of the video'
>>> thing("can you spot a bulldozer in the clip")
'bulldozer'
>>> thing("does the fireworks display last")
'fireworks display'
>>> list_items("a cat, coffee and a rocket")
['a cat', 'coffee', 'a rocket']
"""

from __future__ import annotations

import re

#: chat spellings and short forms -> plain words (whole words only)
_CHAT = {
    "whats": "what is", "what's": "what is", "wats": "what is", "wat": "what", "wht": "what", "whens": "when is",
    "when's": "when is", "wheres": "where is", "where's": "where is", "whos": "who is", "who's": "who is",
    "theres": "there is", "there's": "there is", "hw": "how", "howmany": "how many", "wich": "which",
    "r": "are", "u": "you", "ur": "your", "pls": "", "plz": "", "please": "", "vid": "video", "vids": "videos",
    "abt": "about", "ppl": "people", "pple": "people",
    "seperate": "separate", "seperately": "separately", "thru": "through", "isnt": "isn't",
    "doesnt": "doesn't", "dont": "don't", "didnt": "didn't", "cant": "can't", "wasnt": "wasn't", "arent": "aren't",
    "werent": "weren't", "hasnt": "hasn't", "havent": "haven't", "couldnt": "couldn't", "wont": "won't",
}
_CHAT_WORD = re.compile(r"(?<![\w'])(" + "|".join(sorted(map(re.escape, _CHAT), key=len, reverse=True)) + r")(?![\w'])")

#: words dropped around a target phrase
_FILLER = frozenset(
    "a an the this that these those there here is are was were be been being it its of in on at to into "
    "video clip footage shown show shows seen see appear appears appeared visible does do did what which who "
    "how many times time separate different distinct often number much when where whom ever any some "
    "anything something does somebody someone briefly first last later earlier point moment part quarter "
    "screen scene can could has have had roughly approximately exactly just around".split()
)
#: who sees, or what the video does, before the thing is named ("you spot", "the video contains")
_LEAD = re.compile(r"^(?:(?:you|we|i|they|one|people)\s+(?:can\s+|could\s+|get to\s+)?(?:see|spot|notice|find|catch|"
                   r"seen|spotted|noticed|found|saw|caught)|(?:(?:video|clip|footage|movie|film|recording)\s+)?"
                   r"(?:contains?|includes?|features?|depicts?|shows?)|(?:in\s+)?total|in all|altogether|"
                   r"there\s+(?:is|are|was|were))\b\s*")
#: where a thing's name ends: a verb of showing or being, a place in the video, a clause of time
_END = re.compile(r"\b(?:is|are|was|were|be|been|does|do|did|can|could|will|would|has|have|had|shown|seen|visible|"
                  r"appears?|appeared|appearing|shows?|showed|showing|pops?|popped|comes?|came|coming|turns? up|"
                  r"happens?|happened|occurs?|occurred|stays?|stayed|remains?|remained|pass(?:es|ed|ing)?|makes?|made|"
                  r"gets?|got|lasts?|lasted|enters?|entered|leaves?|left|at (?:any|some) point|anywhere|ever|"
                  r"(?:drives?|go|goes|walks?|runs?|fl(?:y|ies)|moves?|cross(?:es)?|arrives?|returns?|rides?|rolls?|"
                  r"sails?|floats?|swims?|jumps?|drops?|falls?)(?= by| past| across| through| in| into| out| over| "
                  r"away| off| up| down| around| on|$)|"
                  r"during|throughout|"
                  # a preposition ends the name before a definite place or the video ("the people in the car", "a
                  # dog in the clip"), not inside a description ("a woman in a naval uniform", "a man on a phone")
                  r"(?:in|on|at|for|across|within|inside|over)(?= (?:the|this|that|these|those|our|its|their|his|"
                  r"her)\b| (?:video|clip|footage|film|movie|recording|screen|beginning|start|end|middle|once|"
                  r"any|some|all|total|\d)\b|$))\b")


def normalise(question: str) -> str:
    """``question`` in lower case with single spaces, its chat spellings made plain (``"whats"`` -> ``"what
    is"``, ``"u"`` -> ``"you"``, ``"isnt"`` -> ``"isn't"``, ``"pls"`` dropped)."""
    q = " ".join(str(question).lower().replace("\u2019", "'").split())
    return " ".join(_CHAT_WORD.sub(lambda m: _CHAT[m.group(1)], q).split())


def phrase(text: str) -> str:
    """``text`` without filler words at its ends (``"is a cup of coffee shown"`` -> ``"cup of coffee"``)."""
    words = re.findall(r"[a-z0-9']+", str(text).lower())
    while words and words[0] in _FILLER:
        words.pop(0)
    while words and words[-1] in _FILLER:
        words.pop()
    return " ".join(words)


def thing(text: str) -> str:
    """The name of the thing a clause is about: fillers, who sees it (``"you spot"``, ``"the video contains"``)
    and what follows its name (``"appears"``, ``"in the clip"``, ``"at any point"``) dropped."""
    words = phrase(text)
    while (cut := _LEAD.sub("", words, count=1)) != words:
        words = phrase(cut)
    return phrase(_END.split(words, maxsplit=1)[0])


def list_items(text: str) -> list[str]:
    """The things a question lists: ``"a cat, coffee and a rocket"`` -> ``["a cat", "coffee", "a rocket"]``."""
    return [p.strip() for p in re.split(r"\s*(?:,\s*and\b|,|;|\band\b|\bor\b)\s*", text) if p and p.strip()]


def split_items(option: str) -> list[str]:
    """The things an order option names, in its order: ``"a cat, then coffee"`` -> ``["a cat", "coffee"]``.

    >>> split_items("rocket -> a cat -> coffee")
    ['rocket', 'a cat', 'coffee']
    """
    parts = re.split(r"\s*(?:,\s*(?:and\s+)?then\b|\bthen\b|->|\u2192|,\s*and\b|,|;|\bfollowed by\b|\band then\b)\s*",
                     str(option).strip().rstrip("."))
    return [p.strip() for p in parts if p and p.strip()]


def named_list(q: str, *patterns: str) -> str:
    """The things a question lists around a colon or before its question (``"a, b and c: which one is never
    shown"``, ``"which of these never appears: a, b, c"``, ``"among a, b and c, which ..."``), or matching
    one of ``patterns`` (group 1 is the list); ``""`` when it lists fewer than two."""
    named = ""
    if ":" in q:
        head, tail = q.split(":", 1)
        named = head if re.match(r"\s*(?:which|what|who|in what|in which)\b", tail) else tail
    else:
        match = next(filter(None, (re.search(p, q) for p in (
            r"^\s*(?:out of|among(?:st)?|between|from)\s+(.+?),?\s+(?:which|what|who)\b", *patterns))), None)
        named = match.group(1) if match else ""
    named = named.strip(" ?.!")
    return named if len(list_items(named)) > 1 else ""
