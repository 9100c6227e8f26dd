"""Independent references for forward-mode hypergradients: finite differences and reverse mode.

:func:`meta_loss` (the meta-objective alone), :func:`finite_difference` (central
differences of it), :func:`reverse_hypergradient` (reverse mode through the unrolled
lookahead, memory growing with T) and :func:`compare_hypergradients` (forward mode
against both).
"""

import numpy as np
import torch

from .hypergrad import check_batches, hypergradient
from .models import loss_fn
from .training import TrainState, init_state, momentum_step


def meta_loss(apply, state, hyper, batches, eval_batches, convention="paper", t0=None):
    """The meta-objective alone (no tangents): for finite differences."""
    batches = check_batches(batches, "batches")
    if not isinstance(state, TrainState):
        state = init_state(state)
    t0 = state.step if t0 is None else t0
    w, v = tuple(p.detach() for p in state.params), tuple(state.velocity)
    for i, (images, labels) in enumerate(batches):
        alpha, mu, _, _ = hyper.at(t0 + i)
        w = tuple(p.requires_grad_(True) for p in w)
        with torch.enable_grad():
            g = torch.autograd.grad(loss_fn(apply, w, images, labels), w)
        with torch.no_grad():
            w, v = momentum_step(tuple(p.detach() for p in w), v, g, alpha, mu, convention)
    with torch.no_grad():
        return sum(loss_fn(apply, w, x, y).item() for x, y in eval_batches) / len(eval_batches)


def finite_difference(apply, state, hyper, batches, eval_batches, convention="paper", eps=1e-5, t0=None):
    """Central finite differences of :func:`meta_loss` in the learned coordinates ``u``."""
    u = hyper.vector()
    out = np.zeros_like(u)
    for j in range(len(u)):
        step = np.zeros_like(u)
        step[j] = eps
        plus = meta_loss(apply, state, hyper.from_vector(u + step), batches, eval_batches, convention, t0)
        minus = meta_loss(apply, state, hyper.from_vector(u - step), batches, eval_batches, convention, t0)
        out[j] = (plus - minus) / (2 * eps)
    return out


def reverse_hypergradient(apply, state, hyper, batches, eval_batches, convention="paper", t0=None):
    """Reverse mode through the unrolled lookahead: keeps the whole graph (memory grows with T)."""
    batches = check_batches(batches, "batches")
    if not isinstance(state, TrainState):
        state = init_state(state)
    t0 = state.step if t0 is None else t0
    u = torch.tensor(hyper.vector(), dtype=torch.float64, requires_grad=True)
    w = tuple(p.detach().requires_grad_(True) for p in state.params)
    v = tuple(state.velocity)
    with torch.enable_grad():
        for i, (images, labels) in enumerate(batches):
            alpha, mu = hyper.torch_at(u, t0 + i)
            g = torch.autograd.grad(loss_fn(apply, w, images, labels), w, create_graph=True)
            w, v = momentum_step(w, v, g, alpha, mu, convention)
        meta = sum(loss_fn(apply, w, x, y) for x, y in eval_batches) / len(eval_batches)
        (grad,) = torch.autograd.grad(meta, u)
    return grad.numpy()


def compare_hypergradients(apply, state, hyper, batches, eval_batches, convention="paper", eps=1e-6):
    """Forward mode, central finite differences and reverse mode on one lookahead (use float64).

    Returns a dict with the three vectors and the largest relative differences
    of forward mode to each reference (relative to the largest reference entry).
    """
    forward = hypergradient(apply, state, hyper, batches, eval_batches, convention).grad
    fd = finite_difference(apply, state, hyper, batches, eval_batches, convention, eps)
    reverse = reverse_hypergradient(apply, state, hyper, batches, eval_batches, convention)

    def rel(a, b):
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    return {"forward": forward, "finite_difference": fd, "reverse": reverse,
            "rel_err_fd": rel(forward, fd), "rel_err_reverse": rel(forward, reverse)}
