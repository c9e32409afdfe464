"""A transformers CLIP or SigLIP vision tower (and its text tower, when saved with it) from a local directory.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP);
Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training" (SigLIP).

Tokens are the patch grid of the last layer: for CLIP the patch states (class token dropped) after the final
LayerNorm and, when the checkpoint has one, the visual projection, so they live in the joint space; for SigLIP the
patch states after the final LayerNorm, which the attention-pooling head maps into the joint space in
``embed_visual``. ``encode_text`` runs the text tower (pooled output, projected for CLIP). Loading uses local
files only; remote code stays off unless ``trust_remote_code=True``; pickled ``.bin`` weights are refused
unless ``allow_pickle=True``.

``attention_layer=-2`` (any layer index) also records, per token, the attention it receives at that layer
(:mod:`mmlong.encoders.attention`: CLIP's class-token attention, SigLIP's mean received attention) in
``VisualTokens.attention``, which attention-guided compressors (``visionzip``, ``holitom``) need.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmlong.cache import file_sha256
from mmlong.encoders.attention import capture_inputs, received_attention
from mmlong.encoders.base import Encoder
from mmlong.encoders.preprocess import encode_batched, l2_normalize, prepare_pixels, resolve_device, resolve_dtype
from mmlong.errors import ModelLoadError
from mmlong.types import Frames, VisualTokens

#: model_type -> family. Full models carry a text tower; *_vision_model checkpoints do not.
FAMILIES = {
    "clip": "clip",
    "clip_vision_model": "clip",
    "siglip": "siglip",
    "siglip_vision_model": "siglip",
}
#: Pixel normalisation when the directory has no preprocessor_config.json.
DEFAULT_NORMALIZATION = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


class HFVisionEncoder(Encoder):
    """CLIP / SigLIP from ``path`` (a ``save_pretrained`` directory).

    >>> enc = HFVisionEncoder(HFVisionEncoder.Config(path="/models/clip-vit-base-patch32"))  # doctest: +SKIP
    >>> enc.encode(frames).grid                                                            # doctest: +SKIP
    (T, 7, 7)
    """

    name = "hf-vision"

    @dataclass
    class Config:
        path: str = ""
        device: str = "cpu"
        dtype: str = "float32"
        batch_size: int = 16
        resize: str = "squash"
        trust_remote_code: bool = False
        allow_pickle: bool = False
        #: Record each token's received attention at this encoder layer (-2: the layer VisionZip uses). None: off.
        attention_layer: int | None = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from transformers import AutoConfig, AutoModel

        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype)
        self.path = Path(cfg.path).expanduser() if cfg.path else None
        if self.path is None or not (self.path / "config.json").is_file():
            raise ModelLoadError(
                "hf-vision needs path= a local model directory with config.json (save_pretrained output)",
                str(self.path or "(no path)"),
            )
        try:
            hf_config = AutoConfig.from_pretrained(
                self.path, local_files_only=True, trust_remote_code=cfg.trust_remote_code
            )
        except (OSError, ValueError, KeyError) as err:
            hint = "; pass trust_remote_code=True only if you trust it" if "trust_remote_code" in str(err) else ""
            raise ModelLoadError(f"cannot read the model config ({_first_line(err)}){hint}", str(self.path)) from err
        self.family = FAMILIES.get(hf_config.model_type)
        if self.family is None:
            raise ModelLoadError(
                f"model_type {hf_config.model_type!r} is not a CLIP or SigLIP model; supported: {', '.join(FAMILIES)}",
                str(self.path),
            )
        try:
            model = AutoModel.from_pretrained(
                self.path,
                local_files_only=True,
                trust_remote_code=cfg.trust_remote_code,
                use_safetensors=None if cfg.allow_pickle else True,
                dtype=self.dtype,
            )
        except (OSError, ValueError, RuntimeError) as err:
            hint = "" if cfg.allow_pickle else " (only .safetensors weights load unless allow_pickle=True)"
            raise ModelLoadError(f"cannot load the model ({_first_line(err)}){hint}", str(self.path)) from err
        self.module = model.to(self.device).eval()
        self.vision = getattr(model, "vision_model", model)
        self.visual_projection = getattr(model, "visual_projection", None)
        self.text_model = getattr(model, "text_model", None)
        self.text_projection = getattr(model, "text_projection", None)
        self.has_text = self.text_model is not None  # type: ignore[misc]
        vision_config = getattr(hf_config, "vision_config", hf_config)
        self.image_size = (int(vision_config.image_size),) * 2
        side = vision_config.image_size // vision_config.patch_size
        self.grid_size = (side, side)
        self.mean, self.std = self._normalization()
        self.text_max_length = (
            int(hf_config.text_config.max_position_embeddings) if hasattr(hf_config, "text_config") else 77
        )
        self._tokenizer: Any = None
        self.attention_module = self._attention_module(cfg.attention_layer)

    def _attention_module(self, layer: int | None) -> torch.nn.Module | None:
        if layer is None:
            return None
        layers = self.vision.encoder.layers
        if not -len(layers) <= layer < len(layers):
            raise ModelLoadError(
                f"attention_layer={layer} is outside the tower's {len(layers)} layers "
                f"(use {-len(layers)}..{len(layers) - 1}; -2 as VisionZip)", str(self.path))
        return layers[layer].self_attn

    def _normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        pp = self.path / "preprocessor_config.json"
        if pp.is_file():
            data = json.loads(pp.read_text())
            if "image_mean" in data and "image_std" in data:
                return tuple(data["image_mean"]), tuple(data["image_std"])
        return DEFAULT_NORMALIZATION[self.family]

    # ------------------------------------------------------------------ visual side
    def _pixels(self, frames: torch.Tensor) -> torch.Tensor:
        return prepare_pixels(frames, self.image_size, self.mean, self.std, self.config.resize, self.device, self.dtype)

    def _patch_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B, 3, H, W]`` to patch tokens ``[B, h, w, D]``."""
        hidden = self.vision(pixel_values=pixels).last_hidden_state
        if self.family == "clip":
            hidden = self.vision.post_layernorm(hidden[:, 1:])
            if self.visual_projection is not None:
                hidden = self.visual_projection(hidden)
        # SigLIP's last_hidden_state is already after post_layernorm and has no class token
        return hidden.reshape(hidden.shape[0], *self.grid_size, hidden.shape[-1])

    def _patch_grid_with_attention(self, pixels: torch.Tensor) -> torch.Tensor:
        """Like :meth:`_patch_grid`, with each token's received attention as one more channel ``[B, h, w, D+1]``."""
        with capture_inputs(self.attention_module) as seen:
            grid = self._patch_grid(pixels)
        scores = received_attention(self.attention_module, seen[-1], has_cls=self.family == "clip")
        return torch.cat([grid.float(), scores.reshape(*grid.shape[:-1], 1)], dim=-1)

    @property
    def token_dim(self) -> int:
        if self.visual_projection is not None:
            return int(self.visual_projection.out_features)
        return int(self.vision.config.hidden_size)

    def encode(self, frames: Frames) -> VisualTokens:
        """``T`` frames to ``T * h * w`` patch tokens on the grid ``(T, h, w)``."""
        with_attention = self.attention_module is not None
        if len(frames) == 0:
            grid = torch.empty(0, *self.grid_size, self.token_dim + int(with_attention))
        else:
            forward = self._patch_grid_with_attention if with_attention else self._patch_grid
            grid = encode_batched(frames.data, self.config.batch_size, self._pixels, forward)
        attention = None
        if with_attention:
            grid, attention = grid[..., :-1], grid[..., -1].reshape(-1).contiguous()
        meta = {
            "encoder": self.name,
            "family": self.family,
            "frame_indices": frames.indices.tolist(),
            "input_size": list(self.image_size),
        }
        if with_attention:
            meta["attention_layer"] = self.config.attention_layer
            meta["attention_kind"] = "cls" if self.family == "clip" else "mean"
        tokens = VisualTokens.from_grid(grid.contiguous(), frames.timestamps, meta=meta)
        return tokens.replace(attention=attention) if with_attention else tokens

    # ------------------------------------------------------------------ text side
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(
                    self.path, local_files_only=True, trust_remote_code=self.config.trust_remote_code
                )
            except (OSError, ValueError) as err:
                raise ModelLoadError(
                    f"no usable tokenizer in the model directory ({_first_line(err)}); save one with the model",
                    str(self.path),
                ) from err
        return self._tokenizer

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit text embeddings ``[Q, E]`` (CLIP: projected pooled EOS state; SigLIP: head of the last state)."""
        if not self.has_text:
            raise ModelLoadError(f"{self.family} vision-only checkpoint has no text tower", str(self.path))
        padding = "max_length" if self.family == "siglip" else True
        batch = self.tokenizer(
            list(texts), padding=padding, truncation=True, max_length=self.text_max_length, return_tensors="pt"
        ).to(self.device)
        inputs = {"input_ids": batch["input_ids"]}
        if self.family == "clip" and "attention_mask" in batch:
            inputs["attention_mask"] = batch["attention_mask"]
        with torch.inference_mode():
            pooled = self.text_model(**inputs).pooler_output
            if self.text_projection is not None:
                pooled = self.text_projection(pooled)
        return l2_normalize(pooled.float().cpu())

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        """Unit joint-space embeddings ``[F, E]`` of token means ``[F, D]``.

        CLIP tokens are already projected; SigLIP features go through the attention-pooling head as a one-token
        sequence (the head's probe then attends to that single token).
        """
        if not self.has_text:
            raise ModelLoadError(f"{self.family} vision-only checkpoint has no joint text space", str(self.path))
        head = getattr(self.vision, "head", None) if self.family == "siglip" else None
        if head is None:
            return l2_normalize(features)
        with torch.inference_mode():
            x = features.to(device=self.device, dtype=self.dtype).unsqueeze(1)
            return l2_normalize(head(x).float().cpu())

    def attention_pool(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """SigLIP's attention-pooling head on each frame's tokens ``[F, n, D]`` (this encoder's own features).

        Returns the pooled global features ``[F, D]`` (the head's output, as ``pooler_output``) and the probe's
        attention over the tokens ``[F, n]`` (averaged over heads), or None when the model has no such head (CLIP,
        a SigLIP saved without it) or the features are not this encoder's width. FastVID reads both.
        """
        head = getattr(self.vision, "head", None) if self.family == "siglip" else None
        if head is None or features.ndim != 3 or features.shape[-1] != int(self.vision.config.hidden_size):
            return None
        with torch.inference_mode():
            x = features.to(device=self.device, dtype=self.dtype)
            probe = head.probe.repeat(x.shape[0], 1, 1)
            _, weights = head.attention(probe, x, x, need_weights=True, average_attn_weights=True)
            return head(x).float().cpu(), weights[:, 0].float().cpu()

    # ------------------------------------------------------------------ identity
    def fingerprint_weights(self) -> str:
        """Hash of the directory's weight files (names, sizes and contents)."""
        files = sorted(p for p in self.path.iterdir() if p.suffix in (".safetensors", ".bin"))
        digest = "|".join(f"{p.name}:{file_sha256(p)}" for p in files)
        return hashlib.sha256(digest.encode()).hexdigest()[:16]
