"""Reading the option letter out of a free-text reply, exactly as each benchmark's official evaluation does.

- Video-MME (``evaluation/eval_your_results.py`` of the official repository, the same function in lmms-eval
  0.7.3's ``videomme/utils.py``): answer phrases are deleted wherever they occur (the list has two pairs joined by a
  missing comma, kept as written: ``"The best option isThe correct option is"``, ``"Best answer:Best option:"``),
  a reply of more than ten words without any of A-D is unreadable, else the **first capital A, B, C or D anywhere**
  is the answer (the "A" of "All" included). Unreadable replies are left out of the official denominator; lmms-eval
  counts them wrong.
- LongVideoBench (lmms-eval's ``longvideobench/utils.py``, "same as the original LongVideoBench paper"): the same
  reading over A-E; when it fails the model is given a **random choice** among the options.

>>> videomme_letter("The best answer is (C)."), videomme_letter("All of them"), videomme_letter("no idea")
('C', 'A', None)
>>> longvideobench_letter("Answer: E", 4), longvideobench_letter("option E", 4)
('A', 'E')
>>> longvideobench_letter("maybe", 4) is None
True
"""

from __future__ import annotations

import random
import re

#: Video-MME's answer phrases as the official script lists them (two adjacent literals join)
VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                     "The best option isThe correct option is", "Best answer:Best option:")
#: LongVideoBench's (lmms-eval) answer phrases
LONGVIDEOBENCH_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                           "The best option is", "The correct option is", "Best answer:", "Best option:")


def _first_letter(text: str, prefixes: tuple[str, ...], letters: str) -> str | None:
    reply = str(text).strip()
    for prefix in prefixes:
        reply = reply.replace(prefix, "")
    found = re.search(f"[{letters}]", reply)
    if len(reply.split()) > 10 and found is None:
        return None
    return found.group(0) if found else None


def videomme_letter(text: str) -> str | None:
    """The letter Video-MME's official script reads from ``text`` (``None``: unreadable, its ``""``)."""
    return _first_letter(text, VIDEOMME_PREFIXES, "ABCD")


def longvideobench_letter(text: str, count: int) -> str | None:
    """The letter LongVideoBench's evaluation reads (any of A-E, even past the ``count`` options); ``None`` when
    it reads none (the evaluation then draws a random choice: :func:`random_choice`)."""
    del count  # the official reading looks for A-E whatever the number of options
    return _first_letter(text, LONGVIDEOBENCH_PREFIXES, "ABCDE")


def random_choice(question_id: str, count: int, seed: int = 0) -> str:
    """The random option given to an unreadable LongVideoBench reply. lmms-eval draws from the process-wide
    generator (seeded once per run, so the draw depends on the order questions are scored in); here each
    question draws from its own generator seeded by ``seed`` and its id, so a resumed, sharded or re-ordered run
    gives the same letter.

    >>> random_choice("q1", 4) == random_choice("q1", 4)
    True
    """
    options = [chr(ord("A") + i) for i in range(count)]
    return random.Random(f"{seed}:{question_id}").choice(options)
