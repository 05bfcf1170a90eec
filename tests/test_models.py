"""U-Net and FCN: shapes for any input size, binary and C-class heads, width/depth, errors."""

import pytest
import torch

from iou_lib.models import MODELS, build_model, count_parameters, stack_states, unstack_state


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(
    ("out_channels", "depth", "size"), [(1, 0, (9, 7)), (1, 3, (45, 60)), (11, 2, (16, 16))]
)
def test_output_shape_matches_input(name, out_channels, depth, size):
    net = build_model(name, 3, out_channels, width=4, depth=depth).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, out_channels, *size) and out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MODELS))
def test_width_and_depth_grow_the_model(name):
    small = count_parameters(build_model(name, width=4, depth=2))
    assert small < count_parameters(build_model(name, width=8, depth=2))
    assert small < count_parameters(build_model(name, width=4, depth=3))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_reach_every_parameter(name):
    net = build_model(name, width=4, depth=2, norm="group")
    net(torch.randn(2, 3, 12, 12)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_padding_does_not_leak_across_the_batch():
    net = build_model("unet", width=4, depth=2).eval()
    x = torch.randn(3, 3, 10, 13)
    with torch.no_grad():
        assert torch.allclose(net(x)[1:2], net(x[1:2]), atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_grouped_network_is_s_independent_networks(name, norm):
    """groups=S trains S networks at once: same outputs (BatchNorm in training mode: per-network batch
    statistics), same gradients, and the states convert both ways."""
    torch.manual_seed(0)
    nets = [build_model(name, 3, 2, width=4, depth=2, norm=norm) for _ in range(3)]
    grouped = build_model(name, 3, 2, width=4, depth=2, norm=norm, groups=3)
    grouped.load_state_dict(stack_states([n.state_dict() for n in nets]))
    x = torch.randn(4, 3, 3, 12, 10)  # 4 images for each of 3 networks
    out = grouped(x.flatten(1, 2)).unflatten(1, (3, 2))
    out.square().sum().backward()
    for s, net in enumerate(nets):
        ref = net(x[:, s])
        ref.square().sum().backward()
        assert torch.allclose(out[:, s], ref, atol=1e-5)
    for k, v in unstack_state(grouped.state_dict(), 3)[1].items():
        assert torch.allclose(v, nets[1].state_dict()[k], atol=1e-6), k  # running stats updated alike
    grads = dict(grouped.named_parameters())
    for k, p in nets[2].named_parameters():
        g = grads[k].grad.chunk(3)[2]
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-4 * p.grad.abs().max()), (
            k,
            (g - p.grad).abs().max(),
        )


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'vgg'; available models: unet, fcn"):
        build_model("vgg")
    with pytest.raises(ValueError, match="width must be >= 1, got 0"):
        build_model("unet", width=0)
    with pytest.raises(TypeError, match="depth must be an int"):
        build_model("fcn", depth=2.0)
    with pytest.raises(ValueError, match="norm must be"):
        build_model("unet", norm="layer")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_cuda_bf16_channels_last(name):
    net = build_model(name, 3, 11, width=8, depth=3).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 90, 120, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = net(x)
    assert out.shape == (4, 11, 90, 120) and torch.isfinite(out.float()).all()
