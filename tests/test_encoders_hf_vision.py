from __future__ import annotations

import json

import pytest
import torch

from mmlong.errors import ModelLoadError
from mmlong.registry import ENCODERS
from mmlong.types import Frames, VideoMeta

WORDS = ["a", "photo", "of", "cat", "dog", "cup", "coffee", "rocket", "the", "on", "table"]
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def tiny_tokenizer():
    """A word-level tokenizer built here (no download), wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_dims():
    text = dict(vocab_size=len(SPECIALS) + len(WORDS), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                  patch_size=8)
    return text, vision


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text, vision = tiny_dims()
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)).eval()
    path = tmp_path_factory.mktemp("clip")
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(1)
    text, vision = tiny_dims()
    text = {k: v for k, v in text.items() if k != "bos_token_id"}
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval()
    path = tmp_path_factory.mktemp("siglip")
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def frames(t=3, seed=0) -> Frames:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (t, 40, 56, 3), dtype=torch.uint8, generator=g)
    meta = VideoMeta(path="rand", duration=float(t), fps=1.0, num_frames=t, width=56, height=40)
    return Frames(data, torch.arange(t) + 5, torch.arange(t, dtype=torch.float64) + 0.25, meta)


def test_clip_patch_tokens_are_projected_last_layer_patches(clip_dir):
    enc = ENCODERS.create("hf-vision", path=str(clip_dir), batch_size=2)
    fr = frames()
    tok = enc.encode(fr)
    assert tok.grid == (3, 4, 4) and tok.features.shape == (48, 24)
    assert tok.timestamps[16:32].tolist() == [1.25] * 16
    assert tok.positions[16 + 4 * 2 + 3].tolist() == [1.0, 2.0, 3.0]
    assert tok.meta["family"] == "clip" and tok.meta["frame_indices"] == [5, 6, 7]
    # independently: the model's own hidden states, post-LN, projected
    model = enc.module
    with torch.inference_mode():
        out = model.vision_model(pixel_values=enc._pixels(fr.data), output_hidden_states=True)
        ref = model.visual_projection(model.vision_model.post_layernorm(out.hidden_states[-1][:, 1:]))
    assert torch.allclose(tok.features, ref.reshape(48, 24), atol=1e-5)


def test_clip_text_matches_get_text_features(clip_dir):
    enc = ENCODERS.create("hf-vision", path=str(clip_dir))
    texts = ["a photo of a cat", "a cup of coffee on the table"]
    ours = enc.encode_text(texts)
    assert ours.shape == (2, 24)
    batch = enc.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = enc.module.get_text_features(**batch)
    ref = getattr(ref, "pooler_output", ref)
    assert torch.allclose(ours, ref / ref.norm(dim=-1, keepdim=True), atol=1e-5)
    feats = enc.encode(frames(1)).frame_means()[2]
    assert torch.allclose(enc.embed_visual(feats).norm(dim=-1), torch.ones(1), atol=1e-5)
    assert enc.relevance(feats, texts).shape == (2, 1)


def test_siglip_tokens_text_and_head(siglip_dir):
    enc = ENCODERS.create("hf-vision", path=str(siglip_dir))
    fr = frames(2)
    tok = enc.encode(fr)
    assert tok.grid == (2, 4, 4) and tok.features.shape == (32, 32)
    with torch.inference_mode():
        ref = enc.module.vision_model(pixel_values=enc._pixels(fr.data)).last_hidden_state
    assert torch.allclose(tok.features, ref.reshape(32, 32), atol=1e-5)
    text = enc.encode_text(["a photo of a dog"])
    assert text.shape == (1, 32)
    visual = enc.embed_visual(tok.frame_means()[2])
    assert visual.shape == (2, 32)
    with torch.inference_mode():
        head = enc.module.vision_model.head(tok.frame_means()[2][:1].unsqueeze(1))
    assert torch.allclose(visual[0], head[0] / head[0].norm(), atol=1e-5)


def test_vision_only_checkpoint_has_no_text(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    _, vision = tiny_dims()
    CLIPVisionModel(CLIPVisionConfig(**vision)).save_pretrained(tmp_path)
    enc = ENCODERS.create("hf-vision", path=str(tmp_path))
    assert enc.has_text is False
    assert enc.encode(frames(1)).features.shape == (16, 32)
    with pytest.raises(ModelLoadError, match="no text tower"):
        enc.encode_text(["a cat"])


def test_loading_is_local_safe_and_explained(tmp_path, clip_dir):
    with pytest.raises(ModelLoadError, match="config.json"):
        ENCODERS.create("hf-vision", path=str(tmp_path / "missing"))
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "x.Y"}}))
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        ENCODERS.create("hf-vision", path=str(remote))
    bert = tmp_path / "bert"
    from transformers import BertConfig

    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
               intermediate_size=8).save_pretrained(bert)
    with pytest.raises(ModelLoadError, match="not a CLIP or SigLIP"):
        ENCODERS.create("hf-vision", path=str(bert))
    # pickled weights only: refused unless allow_pickle
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((clip_dir / "config.json").read_text())
    from safetensors.torch import load_file

    torch.save(load_file(str(clip_dir / "model.safetensors")), pickled / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="allow_pickle"):
        ENCODERS.create("hf-vision", path=str(pickled))
    enc = ENCODERS.create("hf-vision", path=str(pickled), allow_pickle=True)
    ref = ENCODERS.create("hf-vision", path=str(clip_dir))
    fr = frames(1)
    assert torch.allclose(enc.encode(fr).features, ref.encode(fr).features, atol=1e-5)
    assert enc.cache_id() != ref.cache_id()
