"""The paper's MLP and CNN as pure functions: shapes, initialisation, and a second implementation."""

import pytest
import torch
import torch.nn as nn
from torch.func import grad, vmap

from shortbias_lib.engine.models import (batched_loss, cnn_apply, cnn_init, error_rate, loss_fn,
                                  mean_loss, mlp_apply, mlp_init)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_mlp_shapes_and_init():
    params = mlp_init(gen(), init_std=0.1)
    assert [tuple(p.shape) for p in params] == [(100, 784), (100,), (100, 100), (100,), (10, 100), (10,)]
    assert all(float(b.abs().max()) == 0 for b in params[1::2])
    assert abs(float(params[0].std()) - 0.1) < 0.003
    assert abs(float(mlp_init(gen(), init_std=0.05)[0].std()) - 0.05) < 0.002


def test_mlp_matches_torch_module():
    params = mlp_init(gen(), dtype=torch.float64)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                        nn.Linear(100, 10)).double()
    with torch.no_grad():
        for layer, (w, b) in zip([net[1], net[3], net[5]], zip(params[0::2], params[1::2])):
            layer.weight.copy_(w)
            layer.bias.copy_(b + 0.01)
    shifted = tuple(p + 0.01 if p.dim() == 1 else p for p in params)
    images = torch.rand(7, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(mlp_apply(shifted, images), net(images))
    torch.testing.assert_close(mlp_apply(shifted, images.reshape(7, 784)), net(images))


def test_cnn_matches_torch_module_both_filter_sizes():
    for size in (3, 5):
        params = cnn_init(gen(), filter_size=size, dtype=torch.float64)
        assert [tuple(p.shape) for p in params[0::2]] == [
            (32, 3, size, size), (32, 32, size, size), (64, 32, size, size), (100, 1024), (10, 100)]
        layers = []
        for cin, cout in [(3, 32), (32, 32), (32, 64)]:
            layers += [nn.Conv2d(cin, cout, size, padding="same"), nn.MaxPool2d(2, 2), nn.ReLU()]
        net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(1024, 100), nn.ReLU(), nn.Linear(100, 10)).double()
        modules = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            for m, w, b in zip(modules, params[0::2], params[1::2]):
                m.weight.copy_(w)
                m.bias.copy_(b)
        images = torch.rand(4, 3, 32, 32, dtype=torch.float64)
        torch.testing.assert_close(cnn_apply(params, images), net(images))


def test_cnn_small_sizes():
    params = cnn_init(gen(), channels=(2, 3, 4), hidden=5, image_size=8)
    assert cnn_apply(params, torch.rand(6, 3, 8, 8)).shape == (6, 10)


def test_loss_is_mean_cross_entropy():
    params = mlp_init(gen(), dtype=torch.float64)
    images, labels = torch.rand(9, 784, dtype=torch.float64), torch.randint(0, 10, (9,))
    logits = mlp_apply(params, images)
    manual = -(logits.log_softmax(-1)[torch.arange(9), labels]).mean()
    torch.testing.assert_close(loss_fn(mlp_apply, params, images, labels), manual)
    torch.testing.assert_close(torch.tensor(mean_loss(mlp_apply, params, images, labels, chunk=4),
                                            dtype=torch.float64), manual)
    assert error_rate(mlp_apply, params, images, labels, chunk=4) == pytest.approx(
        float((logits.argmax(-1) != labels).double().mean()))


def test_functional_transforms_work():
    params = mlp_init(gen(), sizes=(12, 6, 3))
    images, labels = torch.rand(5, 12), torch.randint(0, 3, (5,))
    stacked = tuple(torch.stack([p, 2 * p]) for p in params)
    out = vmap(mlp_apply, in_dims=(0, None))(stacked, images)
    torch.testing.assert_close(out[1], mlp_apply(tuple(2 * p for p in params), images))
    g = grad(lambda p: loss_fn(mlp_apply, p, images, labels))(params)
    assert [x.shape for x in g] == [p.shape for p in params]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="init_std"):
        mlp_init(gen(), init_std=0)
    with pytest.raises(ValueError, match="sizes"):
        mlp_init(gen(), sizes=(10,))
    with pytest.raises(ValueError, match="filter_size"):
        cnn_init(gen(), filter_size=4)
    with pytest.raises(ValueError, match="image_size"):
        cnn_init(gen(), image_size=12)


@pytest.mark.parametrize("dtype", [None, torch.float64])
def test_batched_loss_of_stacked_networks_equals_each_networks_own(dtype):
    """Loss and error rate of S stacked MLPs, in chunks, are those of each network alone."""
    g = torch.Generator().manual_seed(2)
    nets = [mlp_init(g, sizes=(6, 5, 3), init_std=0.5) for _ in range(3)]
    stacked = tuple(torch.stack(t) for t in zip(*nets))
    images = torch.randn(23, 6, generator=g)
    labels = torch.randint(0, 3, (23,), generator=g)
    loss = batched_loss(mlp_apply, stacked, images, labels, 10, dtype=dtype)
    both = batched_loss(mlp_apply, stacked, images, labels, 10, errors=True, dtype=dtype)
    assert loss.dtype == (dtype or torch.float32) and torch.equal(both[0], loss)
    for s, net in enumerate(nets):
        assert float(loss[s]) == pytest.approx(mean_loss(mlp_apply, net, images, labels), rel=1e-6)
        assert float(both[1][s]) == error_rate(mlp_apply, net, images, labels)
