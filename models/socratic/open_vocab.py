"""An image-text encoder as the Socratic model's describer: zero-shot classification over a large vocabulary.

The Socratic answerer (:mod:`mmlong.models.socratic.answerer`) describes each moment with an image classifier's most
likely classes and grounds answers in text-to-moment relevance. An image-text encoder (``open_clip``, a
``hf-vision`` CLIP or SigLIP checkpoint) has no classifier head, but its two towers give both, as in CLIP's
zero-shot classification (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", 2021, arXiv:2103.00020):

- **relevance** of a text to a moment is the cosine of the text tower's embedding and the moment's joint-space
  embedding (the encoder's own ``relevance``, unchanged);
- **naming** a moment: ``p(c | moment) = softmax_c(s * <embed_visual(f), encode_text(prompt(c))>)`` over a
  vocabulary of C names, with CLIP's prompt ``"a photo of a {}"`` and logit scale ``s = 100`` (CLIP's learned
  scale, clipped there). The vocabulary is the 1,000 ImageNet class names plus :data:`COMMON_NOUNS`, everyday
  people, places, scenes and things ImageNet has no class for, so an open answer can say "a man", "a street"
  or "a cartoon".

>>> len(vocabulary()) > 1100 and "street" in vocabulary() and "tabby" in vocabulary()
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: everyday nouns and scenes outside ImageNet's 1,000 classes (people, places, events, kinds of footage)
COMMON_NOUNS: tuple[str, ...] = tuple("""
man|woman|child|baby|boy|girl|person|people|crowd|family|couple|team|audience|player|driver|cyclist|runner|
dancer|singer|musician|chef|doctor|nurse|teacher|student|soldier|police officer|farmer|worker|astronaut|
face|hand|eye|hair|smile|
street|road|highway|traffic|city|town|village|building|house|room|kitchen|bedroom|living room|bathroom|office|
classroom|hospital|shop|restaurant|bar|cafe|market|supermarket|factory|warehouse|garage|parking lot|airport|
train station|stadium|gym|swimming pool|playground|park|garden|farm|field|meadow|forest|jungle|desert|mountain|
hill|valley|river|lake|sea|ocean|beach|island|waterfall|cave|snow|ice|rain|storm|cloud|sky|sunset|sunrise|
night|fire|smoke|explosion|
earth|planet|moon|sun|star|space|galaxy|map|globe|
car|truck|bus|train|tram|bicycle|motorcycle|boat|ship|airplane|helicopter|rocket|
dog|cat|horse|cow|sheep|pig|bird|fish|rabbit|deer|bear|lion|tiger|elephant|monkey|insect|animal|
tree|flower|grass|plant|fruit|vegetable|food|meal|bread|cake|drink|coffee|tea|water|bottle|cup|glass|plate|
table|chair|sofa|bed|door|window|wall|floor|stairs|lamp|clock|book|paper|letter|sign|poster|screen|television|
computer|laptop|phone|camera|microphone|guitar|piano|drum|ball|toy|game|gun|knife|tool|machine|robot|
shirt|dress|hat|helmet|shoes|bag|box|money|flag|
cartoon|animation|drawing|painting|diagram|chart|text|slide|logo|video game|
sports|football|soccer|basketball|tennis|baseball|golf|swimming|running|cycling|skiing|surfing|dancing|
cooking|eating|talking|meeting|interview|lecture|concert|party|wedding|game show|news|documentary|
""".replace("\n", "").split("|")[:-1])
#: CLIP's zero-shot prompt
PROMPT = "a photo of a {}"
#: CLIP's logit scale (its learned temperature, clipped at 100)
LOGIT_SCALE = 100.0


def vocabulary(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """ImageNet's class names (first synonym), then :data:`COMMON_NOUNS` and ``extra``, each name once."""
    from mmlong.assets.imagenet import imagenet_class_names
    from mmlong.models.socratic.transcript import clean_class_name

    names = [clean_class_name(n) for n in imagenet_class_names()] + list(COMMON_NOUNS) + list(extra)
    return tuple(dict.fromkeys(n for n in names if n))


class OpenVocabulary:
    """An image-text ``encoder`` with a zero-shot classifier over ``names``: ``classify [F, D] -> [F, C]``,
    ``class_names``; ``encode_text``, ``embed_visual`` and ``relevance`` are the encoder's own. The C prompt
    embeddings are computed once, on first use."""

    def __init__(self, encoder: Any, names: Sequence[str] | None = None, prompt: str = PROMPT,
                 logit_scale: float = LOGIT_SCALE) -> None:
        self.encoder = encoder
        self.class_names = list(names) if names is not None else list(vocabulary())
        self.prompt = prompt
        self.logit_scale = float(logit_scale)
        self.name = getattr(encoder, "name", "encoder")
        self.has_text = True
        self._names_embedded: torch.Tensor | None = None

    def names_embedded(self) -> torch.Tensor:
        """Unit text-tower embeddings ``[C, E]`` of the prompted names, in chunks of 256."""
        if self._names_embedded is None:
            prompts = [self.prompt.format(n) for n in self.class_names]
            self._names_embedded = torch.cat([self.encoder.encode_text(prompts[i:i + 256]).float()
                                              for i in range(0, len(prompts), 256)])
        return self._names_embedded

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Zero-shot probabilities ``[F, C]`` of (mean) features ``[F, D]``."""
        visual = self.encoder.embed_visual(features).float()
        return (self.logit_scale * visual @ self.names_embedded().T).softmax(dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.encoder.encode_text(texts)

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_visual(features)

    def relevance(self, features: torch.Tensor, texts: list[str]) -> torch.Tensor:
        return self.encoder.relevance(features, texts)


def describer(encoder: Any) -> Any:
    """``encoder`` itself when it has an image classifier (``classify``, ``class_names``); an
    :class:`OpenVocabulary` around it when it has a text side instead; else a :class:`ConfigError` saying which
    encoders work."""
    if callable(getattr(encoder, "classify", None)) and getattr(encoder, "class_names", None):
        return encoder
    if encoder is not None and getattr(encoder, "has_text", False):
        return OpenVocabulary(encoder)
    from mmlong.errors import ConfigError

    name = getattr(encoder, "name", None)
    raise ConfigError(
        "the socratic model needs an encoder with an image classifier or a text tower; "
        f"{'encoder ' + repr(name) + ' has neither' if encoder is not None else 'none was given'}; "
        "use --encoder efficientnet-lite0 (or open_clip, or hf-vision with a CLIP or SigLIP checkpoint)")
