"""The paper's networks as pure functions of a parameter tuple.

A model is a pair ``(init, apply)``: ``init`` returns a tuple of tensors and
``apply(params, images)`` the logits. Keeping parameters outside any
``nn.Module`` lets the same code run under ``torch.func`` (``grad``,
``vmap`` over many hyperparameter samples, forward mode) and under the
explicit tangent recursion of :mod:`shortbias_lib.engine.hypergrad`.

* MNIST MLP (Section 3.2-3.3): 784-100-100-10, ReLU, weights
  N(0, ``init_std``^2), zero biases. The paper says ``init_std`` = 0.1; the
  authors' code draws 0.05 (use ``init_std=0.05`` for it).
* CIFAR-10 CNN (Section 3.3): three convolutions with 32, 32, 64 channels,
  'same' padding, each followed by 2x2/2 max-pooling and then ReLU, then
  FC 1024 -> 100 -> ReLU -> 10. The paper says 3x3 filters, the authors'
  code 5x5 (``filter_size=5``); weights N(0, 0.1^2), zero biases.
"""

import torch
import torch.nn.functional as F

MNIST_SIZES = (784, 100, 100, 10)
CIFAR_CHANNELS = (32, 32, 64)


def _check_positive(name, value):
    if not value > 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")


def _normal(generator, shape, std, dtype, device):
    # Draw on the CPU from the given generator so results do not depend on the device.
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * std).to(
        dtype=dtype, device=device)


def mlp_init(generator, sizes=MNIST_SIZES, init_std=0.1, dtype=torch.float32, device="cpu"):
    """MLP parameters ``(W1, b1, W2, b2, ...)``, ``W`` of shape (out, in), N(0, init_std^2), zero biases."""
    _check_positive("init_std", init_std)
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least 2 positive layer widths; got {sizes}")
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(_normal(generator, (fan_out, fan_in), init_std, dtype, device))
        params.append(torch.zeros(fan_out, dtype=dtype, device=device))
    return tuple(params)


def mlp_apply(params, images):
    """Logits of the ReLU MLP; ``images`` of shape (N, 1, 28, 28) or (N, 784)."""
    h = images.reshape(images.shape[0], -1)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = F.linear(h, params[2 * i], params[2 * i + 1])
        if i < n_layers - 1:
            h = F.relu(h)
    return h


def cnn_init(generator, filter_size=3, init_std=0.1, channels=CIFAR_CHANNELS, hidden=100,
             in_channels=3, image_size=32, n_classes=10, dtype=torch.float32, device="cpu"):
    """CIFAR-10 CNN parameters ``(K1, c1, K2, c2, K3, c3, W4, b4, W5, b5)``.

    Defaults follow the paper (3x3 filters); ``filter_size=5`` is the authors'
    code. ``channels``, ``hidden`` and ``image_size`` can be made small for tests.
    """
    _check_positive("init_std", init_std)
    if filter_size < 1 or filter_size % 2 == 0:
        raise ValueError(f"filter_size must be an odd positive integer ('same' padding); got {filter_size}")
    if image_size % (2 ** len(channels)) != 0:
        raise ValueError(f"image_size must be divisible by {2 ** len(channels)} "
                         f"(one 2x2 pooling per convolution); got {image_size}")
    params = []
    previous = in_channels
    for width in channels:
        params.append(_normal(generator, (width, previous, filter_size, filter_size),
                              init_std, dtype, device))
        params.append(torch.zeros(width, dtype=dtype, device=device))
        previous = width
    side = image_size // 2 ** len(channels)
    flat = previous * side * side
    params.append(_normal(generator, (hidden, flat), init_std, dtype, device))
    params.append(torch.zeros(hidden, dtype=dtype, device=device))
    params.append(_normal(generator, (n_classes, hidden), init_std, dtype, device))
    params.append(torch.zeros(n_classes, dtype=dtype, device=device))
    return tuple(params)


def cnn_apply(params, images):
    """Logits of the CNN: [conv ('same') -> 2x2/2 max-pool -> ReLU] x 3, FC -> ReLU -> FC."""
    h = images
    n_conv = len(params) // 2 - 2
    for i in range(n_conv):
        kernel = params[2 * i]
        h = F.conv2d(h, kernel, params[2 * i + 1], padding=kernel.shape[-1] // 2)
        h = F.relu(F.max_pool2d(h, 2, 2))
    h = h.reshape(h.shape[0], -1)
    h = F.relu(F.linear(h, params[-4], params[-3]))
    return F.linear(h, params[-2], params[-1])


def loss_fn(apply, params, images, labels):
    """Mean softmax cross-entropy of ``apply(params, images)`` against ``labels``."""
    return F.cross_entropy(apply(params, images), labels)


def error_rate(apply, params, images, labels, chunk=10000):
    """Fraction of misclassified examples (evaluated in chunks, no gradients)."""
    wrong = 0
    with torch.no_grad():
        for start in range(0, len(labels), chunk):
            logits = apply(params, images[start:start + chunk])
            wrong += (logits.argmax(-1) != labels[start:start + chunk]).sum().item()
    return wrong / max(len(labels), 1)


def mean_loss(apply, params, images, labels, chunk=10000):
    """Mean cross-entropy over a whole data set (chunked, no gradients)."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(labels), chunk):
            logits = apply(params, images[start:start + chunk])
            total += F.cross_entropy(logits, labels[start:start + chunk], reduction="sum").item()
    return total / max(len(labels), 1)


def batched_loss(apply, params, images, labels, chunk=10000, *, errors=False, dtype=None):
    """Mean cross-entropy over ``(images, labels)`` of each of S stacked networks: shape (S,).

    ``params`` hold S parameter sets along a leading axis (``apply`` is vmapped
    over it); no gradients. The chunks' sums are added in ``dtype`` (default: the
    parameters' own); the chunk size and ``dtype`` set the rounding, so a caller
    whose recorded results depend on it keeps its own. With ``errors=True``,
    returns ``(loss, error_rate)``, the error counts added in ``float64``.
    """
    from torch.func import vmap

    def one(p, x, y):
        logits = apply(p, x)
        loss = F.cross_entropy(logits, y, reduction="sum")
        return (loss, (logits.argmax(-1) != y).sum()) if errors else (loss,)

    run = vmap(one, in_dims=(0, None, None))
    loss = wrong = None
    with torch.no_grad():
        for s in range(0, len(labels), chunk):
            part = run(tuple(params), images[s:s + chunk], labels[s:s + chunk])
            part_loss = part[0] if dtype is None else part[0].to(dtype)
            loss = part_loss if loss is None else loss + part_loss
            if errors:
                wrong = part[1].double() if wrong is None else wrong + part[1].double()
    if errors:
        return loss / len(labels), wrong / len(labels)
    return loss / len(labels)


MODELS = {
    "mlp": (mlp_init, mlp_apply),
    "cnn": (cnn_init, cnn_apply),
}
