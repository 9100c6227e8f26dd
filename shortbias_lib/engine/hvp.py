"""Gradients and Hessian-vector products: the per-step kernels of forward-mode hypergradients.

:func:`autograd_grad_hvp` (double backward, any model) and :func:`mlp_grad_hvp` (the
ReLU MLP's R-operator written out, one pass for all directions); :data:`GRAD_HVP`
maps a model's ``apply`` to its fast path. :func:`mlp_grad_hvp_stacked` is the same
R-operator for S stacked MLPs, out of place (the batched SMD of :mod:`shortbias_lib.engine.batched_smd`).
"""

import torch

from .models import loss_fn, mlp_apply


def autograd_grad(apply, params, images, labels):
    params = tuple(p.detach().requires_grad_(True) for p in params)
    with torch.enable_grad():
        loss = loss_fn(apply, params, images, labels)
        grads = torch.autograd.grad(loss, params)
    return loss.detach(), grads


def _accumulate(targets, values, accumulate):
    """``targets <- beta targets + alpha values`` (``accumulate = (beta, alpha)``), or a copy."""
    if accumulate is None:
        for target, value in zip(targets, values):
            target.copy_(value)
        return
    beta, alpha = accumulate
    for target, value in zip(targets, values):
        if beta == 0:
            torch.mul(value, alpha, out=target)
        else:
            target.mul_(beta).add_(value, alpha=alpha)


def autograd_grad_hvp(apply):
    """Gradient and Hessian-vector products by double backward, for any model.

    With ``out=(grads, hvps)`` the results are written there; with also
    ``accumulate=(beta, alpha)``, ``hvps <- beta hvps + alpha H d``.
    """

    def grad_hvp(params, images, labels, directions, out=None, accumulate=None):
        params = tuple(p.detach().requires_grad_(True) for p in params)
        with torch.enable_grad():
            loss = loss_fn(apply, params, images, labels)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            if directions[0].shape[0] == 1:
                hvps = torch.autograd.grad(grads, params, grad_outputs=[d[0] for d in directions])
                hvps = tuple(h.unsqueeze(0) for h in hvps)
            else:
                hvps = torch.autograd.grad(grads, params, grad_outputs=directions,
                                           is_grads_batched=True)
        grads = tuple(g.detach() for g in grads)
        if out is not None:
            _accumulate(out[0], grads, None)
            _accumulate(out[1], hvps, accumulate)
            return loss.detach(), tuple(out[0]), tuple(out[1])
        if accumulate is not None:
            raise ValueError("accumulate needs out=(grads, hvps) to accumulate into")
        return loss.detach(), grads, hvps

    grad_hvp.accumulates = True
    return grad_hvp


def mlp_grad_hvp(params, images, labels, directions, out=None, accumulate=None):
    """Loss, gradient and P Hessian-vector products of the ReLU MLP's cross-entropy in one pass.

    Forward-over-reverse written out (Pearlmutter's R-operator): one forward
    and one backward pass for the value and the gradient, and the forward
    tangents ``R(z)`` and backward tangents ``R(delta)`` of all P directions
    together, reusing the ReLU masks (ReLU has zero curvature) and the
    softmax. ``directions[k]`` has shape (P,) + ``params[k].shape``. The
    tangents are kept as (N, P, width), so that every product of a layer
    serves all P directions at once, never a loop over directions: the
    directions' weights stacked as (P*out, in) give ``h V^T`` and
    ``R(delta)^T h`` as one product each, and ``R(h) W^T`` and
    ``R(delta) W`` are one product with N*P rows. The input has no tangent,
    so the first layer costs one (P times wider) product each way.
    ``out`` (optional) is ``(grads, hvps)``, tensors to write the results
    into (fastest when each ``hvps[k]`` is contiguous, as the
    parameter-major buffers of :func:`hypergradient` are); with also
    ``accumulate=(beta, alpha)``, ``hvps <- beta hvps + alpha H d`` (the
    products accumulate into them directly).
    """
    x = images.reshape(images.shape[0], -1)
    N = x.shape[0]
    L = len(params) // 2
    W = params[0::2]
    P = directions[0].shape[0]
    z, Rz, hs, masks, Rhs = _mlp_forward_tangents(params, directions, x)
    logp = torch.log_softmax(z, -1)
    loss = torch.nn.functional.nll_loss(logp, labels)
    prob = logp.exp()
    delta = prob / N
    delta.scatter_add_(1, labels[:, None], torch.full((N, 1), -1.0 / N, dtype=prob.dtype, device=prob.device))
    if out is None:
        if accumulate is not None:
            raise ValueError("accumulate needs out=(grads, hvps) to accumulate into")
        grads = [torch.empty_like(p) for p in params]
        hvps = [torch.empty((P,) + p.shape, dtype=p.dtype, device=p.device) for p in params]
    else:
        grads, hvps = out
    beta, alpha = (0.0, 1.0) if accumulate is None else accumulate
    deltas = _mlp_backward(W, delta, hs, masks, grads)
    # Backward tangents of the softmax cross-entropy: R(delta) = p (R(z) - <p, R(z)>) / N.
    p3 = prob.unsqueeze(1)
    Rz = Rz.view(N, P, -1)
    Rd = (Rz - (p3 * Rz).sum(-1, keepdim=True)).mul_(p3).div_(N)
    for layer in range(L - 1, -1, -1):
        target = hvps[2 * layer]
        rows, cols = target.shape[1:]
        # R(delta)^T h for all directions: (P*out, N) @ (N, in), into (or onto) the target.
        Rd_t = Rd.reshape(N, -1).t()
        if target.is_contiguous():
            flat = target.view(P * rows, cols)
            if beta == 0:
                torch.mm(Rd_t, hs[layer], out=flat)
                if alpha != 1:
                    flat.mul_(alpha)
            else:
                flat.addmm_(Rd_t, hs[layer], beta=beta, alpha=alpha)
        else:
            _accumulate([target], [(Rd_t @ hs[layer]).view(target.shape)], (beta, alpha))
        if layer > 0:
            # + delta^T R(h): (out, N) @ (N, P*in), seen as (P, out, in).
            cross = deltas[layer].t() @ Rhs[layer].view(N, -1)
            target.add_(cross.view(rows, P, cols).transpose(0, 1), alpha=alpha)
        _accumulate([hvps[2 * layer + 1]], [Rd.sum(0)], (beta, alpha))
        if layer > 0:
            # R(delta) below = (R(delta) W + delta V) * mask.
            below = (Rd.reshape(N * P, -1) @ W[layer]).view(N, P, -1)
            below += torch.matmul(deltas[layer], directions[2 * layer]).transpose(0, 1)
            Rd = below.mul_(masks[layer])
    return loss, tuple(grads), tuple(hvps)


mlp_grad_hvp.accumulates = True


def _mlp_forward_tangents(params, directions, x):
    """Forward pass with the tangents ``R(z)`` of all P directions, kept as (N, P*width) = (N, P, width).

    Returns the logits ``z``, their tangents, and per layer the inputs ``h``, the ReLU
    masks and the input tangents ``R(h)`` (``None`` for the first layer's input).
    """
    N = x.shape[0]
    L = len(params) // 2
    W, b = params[0::2], params[1::2]
    P = directions[0].shape[0]
    # Directions stacked: weights (P*out, in), biases (1, P*out); views when contiguous.
    V = [d.reshape(P * d.shape[1], d.shape[2]) for d in directions[0::2]]
    c = [d.reshape(1, -1) for d in directions[1::2]]
    hs, masks, Rhs = [x], [None], [None]
    z = torch.addmm(b[0], x, W[0].t())
    Rz = torch.addmm(c[0], x, V[0].t())
    for layer in range(1, L):
        h = torch.relu(z)
        mask = torch.sign(h).unsqueeze(1)  # 1 where z > 0, else 0 (one cheap kernel)
        Rh = Rz.view(N, P, -1) * mask
        hs.append(h)
        masks.append(mask)
        Rhs.append(Rh)
        z = torch.addmm(b[layer], h, W[layer].t())
        Rz = torch.addmm(c[layer], h, V[layer].t())                  # h V^T + c
        Rz.view(N * P, -1).addmm_(Rh.view(N * P, -1), W[layer].t())  # + R(h) W^T
    return z, Rz, hs, masks, Rhs


def _mlp_backward(W, delta, hs, masks, grads):
    """Backpropagate the output error ``delta`` into ``grads``; returns each layer's ``delta``."""
    L = len(W)
    deltas = [None] * L
    for layer in range(L - 1, -1, -1):
        deltas[layer] = delta
        torch.mm(delta.t(), hs[layer], out=grads[2 * layer])
        torch.sum(delta, 0, out=grads[2 * layer + 1])
        if layer > 0:
            delta = (delta @ W[layer]) * masks[layer].squeeze(1)
    return deltas


GRAD_HVP = {mlp_apply: mlp_grad_hvp}


def mlp_grad_hvp_stacked(params, images, labels, directions=None):
    """:func:`mlp_grad_hvp` for S independent ReLU MLPs at once, out of place (no ``out=``).

    ``params[k]`` has a leading run axis S (``(S,) + shape``), ``images`` is
    ``(S, N, ...)`` (each run its own minibatch), ``labels`` ``(S, N)``, and
    ``directions[k]`` ``(S, P) + shape``. Returns ``(loss, grads, hvps)``:
    per-run mean cross-entropy ``(S,)``, the gradients ``(S,) + shape`` and
    the Hessian-vector products ``(S, P) + shape``; with ``directions=None``
    only the loss and gradient (``hvps`` is ``None``). The same R-operator as
    :func:`mlp_grad_hvp`, with every product batched over the runs (``bmm``),
    so that one kernel per layer serves all S runs and P directions; pure
    tensor code (no host synchronisation, no data-dependent branch), so it
    traces under ``torch.compile``.
    """
    S, N = images.shape[0], images.shape[1]
    x = images.reshape(S, N, -1)
    L = len(params) // 2
    W, b = params[0::2], params[1::2]
    P = 0 if directions is None else directions[0].shape[1]
    # Forward pass, with the tangents R(z) of all P directions as (S, N, P*width).
    hs, masks, Rhs = [x], [None], [None]
    z = torch.baddbmm(b[0].unsqueeze(1), x, W[0].transpose(1, 2))
    if P:
        V = [d.reshape(S, P * d.shape[2], d.shape[3]) for d in directions[0::2]]
        c = [d.reshape(S, 1, -1) for d in directions[1::2]]
        Rz = torch.baddbmm(c[0], x, V[0].transpose(1, 2))
    for layer in range(1, L):
        h = torch.relu(z)
        mask = (z > 0).to(z.dtype)
        hs.append(h)
        masks.append(mask)
        z = torch.baddbmm(b[layer].unsqueeze(1), h, W[layer].transpose(1, 2))
        if P:
            Rh = Rz.view(S, N, P, -1) * mask.unsqueeze(2)
            Rhs.append(Rh)
            Rz = torch.baddbmm(c[layer], h, V[layer].transpose(1, 2))
            Rz = Rz + torch.bmm(Rh.reshape(S, N * P, -1), W[layer].transpose(1, 2)).view(S, N, -1)
    logp = torch.log_softmax(z, -1)
    loss = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(-1)
    prob = logp.exp()
    delta = (prob - torch.nn.functional.one_hot(labels, prob.shape[-1]).to(prob.dtype)) / N
    deltas = [None] * L
    grads = [None] * (2 * L)
    d = delta
    for layer in range(L - 1, -1, -1):
        deltas[layer] = d
        grads[2 * layer] = torch.bmm(d.transpose(1, 2), hs[layer])
        grads[2 * layer + 1] = d.sum(1)
        if layer > 0:
            d = torch.bmm(d, W[layer]) * masks[layer]
    if not P:
        return loss, tuple(grads), None
    # Backward tangents: R(delta) = p (R(z) - <p, R(z)>) / N, as (S, N, P, width).
    p4 = prob.unsqueeze(2)
    Rz = Rz.view(S, N, P, -1)
    Rd = (Rz - (p4 * Rz).sum(-1, keepdim=True)) * p4 / N
    hvps = [None] * (2 * L)
    for layer in range(L - 1, -1, -1):
        rows, cols = W[layer].shape[1:]
        # R(delta)^T h: (S, P*out, N) @ (S, N, in).
        hw = torch.bmm(Rd.reshape(S, N, -1).transpose(1, 2), hs[layer]).view(S, P, rows, cols)
        if layer > 0:  # + delta^T R(h): (S, out, N) @ (S, N, P*in), seen as (S, P, out, in)
            cross = torch.bmm(deltas[layer].transpose(1, 2), Rhs[layer].reshape(S, N, -1))
            hw = hw + cross.view(S, rows, P, cols).transpose(1, 2)
        hvps[2 * layer] = hw
        hvps[2 * layer + 1] = Rd.sum(1)
        if layer > 0:
            # R(delta) below = (R(delta) W + delta V) * mask.
            below = torch.bmm(Rd.reshape(S, N * P, -1), W[layer]).view(S, N, P, -1)
            below = below + torch.matmul(deltas[layer].unsqueeze(1), directions[2 * layer]).transpose(1, 2)
            Rd = below * masks[layer].unsqueeze(2)
    return loss, tuple(grads), tuple(hvps)
