import pytest
import torch

from models import IMAGE_SIZES, DCGANConfig, Discriminator, Generator, init_weights


@pytest.mark.parametrize("size", IMAGE_SIZES)
def test_shapes_and_ranges(size: int) -> None:
    config = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=size)
    g, d = Generator(config), Discriminator(config)
    g.apply(init_weights)
    d.apply(init_weights)
    z = torch.randn(3, 16)
    images = g(z)
    assert images.shape == (3, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(g(z[:, :, None, None]), images)  # (N, nz) and (N, nz, 1, 1) accepted
    logits = d(images)
    assert logits.shape == (3,)
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())


def test_64_is_the_tutorial_layout() -> None:
    """Same modules, parameter counts and state_dict keys as the PyTorch DCGAN tutorial."""
    g, d = Generator(DCGANConfig()), Discriminator(DCGANConfig())
    assert sum(p.numel() for p in g.parameters()) == 3_576_704
    assert sum(p.numel() for p in d.parameters()) == 2_765_568
    convs = [k for k in g.state_dict() if k.endswith("weight") and g.state_dict()[k].dim() == 4]
    assert convs == ["main.0.weight", "main.3.weight", "main.6.weight", "main.9.weight", "main.12.weight"]
    assert isinstance(g.main[13], torch.nn.Tanh)
    assert not isinstance(d.main[1], torch.nn.BatchNorm2d)  # no BN on D's first layer
    assert isinstance(d.main[1], torch.nn.LeakyReLU) and d.main[1].negative_slope == 0.2


def test_init_weights_statistics() -> None:
    torch.manual_seed(0)
    g = Generator(DCGANConfig())
    g.apply(init_weights)
    conv = g.main[3].weight
    bn = g.main[4]
    assert abs(conv.mean().item()) < 1e-3 and abs(conv.std().item() - 0.02) < 1e-3
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and abs(bn.weight.std().item() - 0.02) < 0.01
    assert torch.count_nonzero(bn.bias) == 0


def test_eval_output_of_a_latent_is_independent_of_its_batch() -> None:
    from models.sampling import render

    torch.manual_seed(0)
    g = Generator(DCGANConfig(nz=16, ngf=8, image_size=32))
    g.apply(init_weights)
    g.train()
    g(torch.randn(64, 16))  # give BN real running statistics
    g.eval()
    z = torch.randn(40, 16)
    together = render(g, z)
    for i in (0, 7, 13, 39):
        alone = render(g, z[i : i + 1])[0]
        shuffled = render(g, torch.cat([torch.randn(5, 16), z[i : i + 1], torch.randn(2, 16)]))[5]
        assert torch.equal(alone, together[i])
        assert torch.equal(shuffled, together[i])
