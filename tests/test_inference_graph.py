"""The folded inference copy of EfficientNet-Lite0 computes the same function as the eager network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmlong.encoders.inference_graph import fold_batch_norm, inference_copy, inline_symmetric_padding

efficientnet = pytest.importorskip("efficientnet_lite_pytorch")


@pytest.fixture(scope="module")
def network():
    from mmlong.encoders.efficientnet import load_state_dict_file, packaged_weights_path

    net = efficientnet.EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(load_state_dict_file(packaged_weights_path()), strict=True)
    return net.eval()


def test_fold_batch_norm_equals_conv_then_norm():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    norm = nn.BatchNorm2d(6, eps=1e-3)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.uniform_(-0.5, 0.5)
    norm.eval()
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected = norm(conv(x))
        # the published fold written out: y = g * (w*x - m) / sqrt(v + eps) + beta
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        by_hand = torch.nn.functional.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1), padding=1) \
            + (norm.bias - norm.running_mean * scale).view(1, -1, 1, 1)
        fold_batch_norm(conv, norm)
        assert torch.allclose(conv(x), expected, atol=1e-5)
        assert torch.allclose(by_hand, expected, atol=1e-5)


def test_only_symmetric_padding_moves_into_the_convolution():
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    stride1 = Conv2dStaticSamePadding(3, 3, 5, stride=1, image_size=24, bias=False)
    stride2 = Conv2dStaticSamePadding(3, 3, 3, stride=2, image_size=24, bias=False)
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        before = stride1(x), stride2(x)
        inline_symmetric_padding(stride1)
        inline_symmetric_padding(stride2)
        assert isinstance(stride1.static_padding, nn.Identity) and tuple(stride1.padding) == (2, 2)
        assert isinstance(stride2.static_padding, nn.ZeroPad2d)  # (0, 1): TF "SAME" at stride 2 is one-sided
        assert torch.equal(stride1(x), before[0]) and torch.equal(stride2(x), before[1])


@pytest.mark.parametrize("size", [96, 224])
def test_inference_copy_matches_the_eager_network(network, size):
    torch.manual_seed(1)
    x = torch.randn(3, 3, size, size)
    fast = inference_copy(network)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in network.modules())  # the original is left as it was
    with torch.inference_mode():
        expected = network.extract_features(x)
        got = fast.extract_features(x.contiguous(memory_format=torch.channels_last))
        logits = fast(x.contiguous(memory_format=torch.channels_last))
        expected_logits = network(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-3 * expected.abs().max()
    assert (logits - expected_logits).abs().max() < 1e-3 * expected_logits.abs().max()
    assert torch.equal(logits.argmax(-1), expected_logits.argmax(-1))
