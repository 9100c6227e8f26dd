"""Beyond the paper: the bias across horizons, its remedies, and an unbiased fix.

Everything here runs on the exact expected dynamics of the noisy quadratic
(Theorem 1, :mod:`shortbias_lib.noisy_quadratic`), so every curve is exact up
to the search over schedules.

* :func:`horizon_bias`, :func:`decay_horizon_bias`: the schedule that is best for
  a horizon ``T`` and what it costs at a longer final horizon.
* :func:`precondition`, :func:`greedy_ratio_map`: greedy / optimized final loss over
  condition number and noise scale, with a diagonal preconditioner ``h**gamma``.
* :func:`pes_estimates`, :func:`truncated_estimates`, :func:`meta_optimize`:
  Persistent Evolution Strategies (Vicol, Metz & Sohl-Dickstein, ICML 2021,
  Algorithm 2 with antithetic sampling) against the truncated (short-horizon)
  hypergradient, both estimating the gradient of a long-horizon meta-objective
  from unrolls of ``window`` steps.
* :class:`MNISTMetaTask`, :func:`run_beyond_mnist`: the same two estimators on the offline
  MNIST decay schedule ``(log alpha_0, log beta)``, small scale, against the exact gradient
  (reverse mode through the whole unroll, second order).
* :func:`explore`: the compute function behind the teaching explorer.
* :func:`run_beyond`: the experiment (``python -m shortbias_lib beyond``): the noisy-quadratic
  results (:func:`run_beyond_nqm`) and the MNIST comparison, each in its own result file.
"""

import math
import time

import numpy as np
import torch

from . import noisy_quadratic as nq
from .profiles import pick
from .runs import (check_seed, load_matching, load_result, provenance,
                   result_path, run_lock, save_result)

DTYPE = torch.float64


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------

def spectrum(n, kappa):
    """Chebyshev extreme-point curvatures on ``[1/kappa, 1]``; all ones when ``kappa == 1``."""
    if not kappa >= 1:
        raise ValueError(f"kappa (condition number) must be >= 1; got {kappa!r}")
    if kappa == 1:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1; got {n!r}")
        return torch.ones(n, dtype=DTYPE)
    return nq.chebyshev_spectrum(n, kappa)


def precondition(h, sigma2, a0, gamma):
    """The problem seen by SGD preconditioned with ``P = diag(h**gamma)``.

    With ``u = P^(1/2) theta`` the update ``theta <- theta - alpha P^-1 g`` is plain
    SGD on ``u`` with curvature ``h / p``, noise variance ``p sigma2`` and initial
    second moment ``p A0``; the excess loss is unchanged. ``gamma = 0``: none,
    ``gamma = 1/2``: square-root (Adam-like when ``sigma2 = 1/h``), ``gamma = 1``:
    exact (Newton / natural gradient), which makes the problem spherical.
    Returns ``(h', sigma2', a0')``.
    """
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma (preconditioner exponent) must be in [0, 1]; got {gamma!r}")
    h = torch.as_tensor(h, dtype=DTYPE)
    p = h ** gamma
    return h / p, torch.as_tensor(sigma2, dtype=DTYPE) * p, torch.as_tensor(a0, dtype=DTYPE) * p


def noisy_problem(n, kappa, noise=1.0, c0=nq.DEFAULT_C0, gamma=0.0):
    """``(h, sigma2, mean0, var0)`` with ``sigma2 = noise / h`` (noise 1 is Section 2.3's,
    ``1/B`` for batch size ``B``), ``E[theta_0] = c0``, preconditioned with ``h**gamma``."""
    if not noise >= 0:
        raise ValueError(f"noise (gradient-noise scale) must be >= 0; got {noise!r}")
    h = spectrum(n, kappa)
    hp, s2, a0 = precondition(h, noise / h, torch.full_like(h, float(c0) ** 2), gamma)
    return hp, s2, torch.sqrt(a0), torch.zeros_like(a0)


DIVERGED = 1e6


def _finite(x, ref=None):
    """Diverged entries become +inf: never plotted, never chosen.

    An entry is diverged if it is not finite, or, given the initial losses
    ``ref`` and losses over steps on the last axis, once the loss has exceeded
    ``DIVERGED`` times the initial loss (it then stays diverged).
    """
    bad = ~torch.isfinite(x)
    if ref is not None:
        bad = bad | (x > DIVERGED * ref[..., None])
        bad = torch.cummax(bad.to(torch.int8), -1).values.bool()
    return torch.where(bad, torch.full_like(x, math.inf), x)


# --------------------------------------------------------------------------
# The bias across horizons
# --------------------------------------------------------------------------

def _check_horizons(horizons, final_horizon):
    horizons = np.asarray(horizons, dtype=int)
    if horizons.ndim != 1 or horizons.size == 0 or (horizons < 1).any():
        raise ValueError("horizons must be a non-empty list of integers >= 1")
    if not isinstance(final_horizon, (int, np.integer)) or final_horizon < horizons.max():
        raise ValueError(f"final_horizon must be an integer >= max(horizons) = {horizons.max()}; "
                         f"got {final_horizon!r}")
    return horizons


def _best_per_horizon(losses, horizons, final_horizon):
    """``losses``: ``(G, final_horizon+1)`` for G candidate schedules that do not depend on T."""
    losses = _finite(losses, losses[..., 0])
    idx = losses[:, horizons].argmin(0)  # best candidate for each horizon
    at_t = losses[idx, horizons]
    at_final = losses[idx, final_horizon]
    return idx, at_t, at_final


def horizon_bias(arrays, horizons, final_horizon, alphas, mus):
    """Best constant ``(alpha, mu)`` for each horizon, and its loss at ``final_horizon``.

    One run of ``final_horizon`` steps per candidate passes through every horizon
    with the same constant schedule, so all horizons cost one batched run.
    Candidates are the grid ``alphas x mus``. Returns a dict of numpy arrays.
    """
    horizons = _check_horizons(horizons, final_horizon)
    alphas = torch.as_tensor(alphas, dtype=DTYPE)
    mus = torch.as_tensor(mus, dtype=DTYPE)
    if (alphas <= 0).any() or ((mus < 0) | (mus >= 1)).any():
        raise ValueError("alphas must be > 0 and mus in [0, 1)")
    ga, gm = torch.meshgrid(alphas, mus, indexing="ij")
    ga, gm = ga.reshape(-1), gm.reshape(-1)
    with torch.no_grad():
        losses = nq.dynamics(*arrays, ga[:, None].expand(-1, final_horizon),
                             gm[:, None].expand(-1, final_horizon))
    idx, at_t, at_final = _best_per_horizon(losses, horizons, final_horizon)
    best_final = _finite(losses, losses[..., 0])[:, final_horizon].min()
    return dict(horizons=horizons, alpha=ga[idx].numpy(), mu=gm[idx].numpy(),
                loss_at_horizon=at_t.numpy(), loss_at_final=at_final.numpy(),
                best_final=best_final.numpy(), final_horizon=np.array(final_horizon))


def decay_schedule(alpha0, beta, steps, K):
    """``alpha_t = alpha0 / (1 + t/K)**beta``, t = 0..steps-1 (the offline MNIST family)."""
    if not K > 0:
        raise ValueError(f"K (decay time scale) must be > 0; got {K!r}")
    t = torch.arange(steps, dtype=DTYPE)
    alpha0 = torch.as_tensor(alpha0, dtype=DTYPE)[..., None]
    beta = torch.as_tensor(beta, dtype=DTYPE)[..., None]
    return alpha0 / (1 + t / K) ** beta


def decay_horizon_bias(arrays, horizons, final_horizon, alpha0s, betas, mu=0.9, K=None):
    """Best ``(alpha_0, beta)`` of :func:`decay_schedule` (momentum ``mu``) for each horizon.

    The schedule does not depend on the horizon, so one run of ``final_horizon``
    steps again serves every horizon (as one 20k-step MNIST run passes through
    all four of the paper's horizons). ``K`` defaults to ``final_horizon / 4``
    (the paper's 5000 / 20000).
    """
    horizons = _check_horizons(horizons, final_horizon)
    K = final_horizon / 4 if K is None else K
    a0, b = torch.meshgrid(torch.as_tensor(alpha0s, dtype=DTYPE),
                           torch.as_tensor(betas, dtype=DTYPE), indexing="ij")
    a0, b = a0.reshape(-1), b.reshape(-1)
    alphas = decay_schedule(a0, b, final_horizon, K)
    with torch.no_grad():
        losses = nq.dynamics(*arrays, alphas, torch.full_like(alphas, mu))
    idx, at_t, at_final = _best_per_horizon(losses, horizons, final_horizon)
    return dict(horizons=horizons, alpha0=a0[idx].numpy(), beta=b[idx].numpy(),
                loss_at_horizon=at_t.numpy(), loss_at_final=at_final.numpy(),
                best_final=_finite(losses, losses[..., 0])[:, final_horizon].min().numpy(),
                K=np.array(K), mu=np.array(mu))


# --------------------------------------------------------------------------
# Remedies: greedy / optimized over (condition number, noise), preconditioned
# --------------------------------------------------------------------------

def greedy_ratio_map(kappas, noises, gammas=(0.0,), *, n=100, horizon=250, c0=nq.DEFAULT_C0,
                     fit_steps=100, fit_lr=0.1, floor=1e-10):
    """Final loss of the greedy schedule (Theorem 2) over the best fitted schedule.

    For every (gamma, kappa, noise) cell: greedy with momentum, then a per-step
    schedule fitted with Adam on (log alpha, logit mu), warm-started at greedy,
    without the Section 2.3 bound. "Optimized" is the lowest final loss the fit
    visited, so ``ratio >= 1`` by construction and is a lower bound on the true
    ratio; where greedy is optimal (noise 0, or a spherical problem) no fit can
    get below it and the ratio is 1. Losses below ``floor`` times the initial loss
    are rounding (a deterministic problem converges to 0), so the ratio is
    ``(greedy + floor L0) / (optimized + floor L0)``. Returns numpy arrays of shape
    ``(len(gammas), len(kappas), len(noises))``.
    """
    kappas, noises, gammas = (list(map(float, x)) for x in (kappas, noises, gammas))
    cells = [(g, k, s) for g in gammas for k in kappas for s in noises]
    probs = [noisy_problem(n, k, s, c0, g) for g, k, s in cells]
    h, s2, m0, v0 = (torch.stack([p[i] for p in probs]) for i in range(4))
    start = time.perf_counter()
    greedy = nq.greedy_schedule(h, s2, m0, v0, horizon)
    mus0 = greedy.mus.nan_to_num(0.5).clamp(1e-4, 1 - 1e-4)
    alphas0 = greedy.alphas.nan_to_num(1e-12).clamp(min=1e-12)
    fit = nq.fit_schedule(h, s2, m0, v0, alphas0, mus0, steps=fit_steps,
                          lr=fit_lr, parameterization="log", bound=False)
    # Greedy never increases the loss (alpha = mu = 0 is allowed), so its final loss is
    # the minimum over its trajectory; this also covers problems solved exactly, after
    # which Theorem 2's formula is 0/0.
    g_final = _finite(greedy.losses.nan_to_num(math.inf)).min(-1).values.clamp(min=0)
    best = torch.minimum(_finite(fit.history).min(-1).values, g_final).clamp(min=0)
    floor = floor * greedy.losses[..., 0]
    shape = (len(gammas), len(kappas), len(noises))
    return dict(kappas=np.array(kappas), noises=np.array(noises), gammas=np.array(gammas),
                greedy=g_final.reshape(shape).numpy(), optimized=best.reshape(shape).numpy(),
                ratio=((g_final + floor) / (best + floor)).reshape(shape).numpy(),
                floor=floor.reshape(shape).numpy(),
                seconds=np.array(time.perf_counter() - start))


# --------------------------------------------------------------------------
# Truncated hypergradients vs Persistent Evolution Strategies
# --------------------------------------------------------------------------

def schedule_from_theta(theta, t0, steps, K):
    """Learning rates for steps ``t0..t0+steps-1`` from meta-parameters ``theta``.

    ``theta[..., 0] = log alpha_0``; with a second entry ``theta[..., 1] = log beta``
    the schedule decays as in :func:`decay_schedule`, otherwise it is constant.
    """
    t = torch.arange(t0, t0 + steps, dtype=DTYPE)
    log_alpha = theta[..., :1]
    if theta.shape[-1] >= 2:
        log_alpha = log_alpha - torch.exp(theta[..., 1:2]) * torch.log1p(t / K)
    return torch.exp(log_alpha).expand(*theta.shape[:-1], steps)


class MetaTask:
    """A long-horizon meta-objective on the noisy quadratic, split into windows.

    Inner loop: SGD with momentum ``mu`` (default 0: plain SGD, where the sign of the
    truncation bias is predicted, see the book) for ``horizon`` steps, learning rates from
    :func:`schedule_from_theta`. The meta-objective is the mean, over the
    ``horizon / window`` windows, of the log expected excess loss at each
    window's end: ``F(theta) = 1/J sum_j log L(s_{jW})``. The log keeps late
    windows from being swamped by early ones.
    """

    def __init__(self, arrays, horizon=250, window=10, mu=0.0, K=None):
        if not isinstance(window, (int, np.integer)) or window < 1 or horizon % window:
            raise ValueError(f"window must be an integer >= 1 dividing horizon={horizon}; "
                             f"got {window!r}")
        self.h, self.sigma2, mean0, var0 = nq.check_problem(*arrays, horizon)
        self.a0 = mean0 ** 2 + var0
        self.horizon, self.window, self.mu = horizon, window, mu
        self.windows = horizon // window
        self.K = horizon / 4 if K is None else K

    def initial_state(self, batch=()):
        a = self.a0.expand(*batch, self.a0.shape[-1])
        return (a, torch.zeros_like(a), torch.zeros_like(a))

    def unroll(self, state, theta, j):
        """Run window ``j`` from ``state`` with meta-parameters ``theta`` (batched ``(..., p)``).

        Returns the new state and the window's loss ``log L`` (shape ``(...)``).
        """
        alphas = schedule_from_theta(theta, j * self.window, self.window, self.K)
        a, v, c = state
        for t in range(self.window):
            a, v, c = nq.second_moment_step(a, v, c, self.h, self.sigma2, alphas[..., t, None], self.mu)
        return (a, v, c), torch.log(0.5 * (self.h * a).sum(-1))

    def objective(self, theta):
        """``F(theta)`` for a batch of ``theta`` ``(..., p)``; differentiable."""
        theta = torch.as_tensor(theta, dtype=DTYPE)
        state = self.initial_state(theta.shape[:-1])
        total = 0
        for j in range(self.windows):
            state, loss = self.unroll(state, theta, j)
            total = total + loss
        return total / self.windows

    def gradient(self, theta):
        """Exact ``grad F`` by reverse mode through the whole unroll."""
        theta = torch.as_tensor(theta, dtype=DTYPE).detach().clone().requires_grad_(True)
        self.objective(theta).sum().backward()
        return theta.grad.detach()


def truncated_estimates(task, theta):
    """Per-window truncated hypergradients at fixed ``theta`` ``(..., p)``: ``(..., J, p)``.

    Window ``j``'s estimate differentiates its own loss with respect to ``theta``
    with the incoming state held fixed (truncated backprop with truncation
    ``window``, i.e. a short-horizon meta-objective): it drops every effect of
    ``theta`` that reaches a loss through the state of a later window. Their
    mean over ``j`` estimates ``grad F``; the difference is the truncation bias.
    """
    theta = torch.as_tensor(theta, dtype=DTYPE)
    state = task.initial_state()
    out = []
    for j in range(task.windows):
        th = theta.detach().clone().requires_grad_(True)
        new_state, loss = task.unroll(tuple(s.detach() for s in state), th, j)
        loss.sum().backward()
        out.append(th.grad.detach() / task.windows)
        state = new_state
    return torch.stack(out, -2)


def pes_estimates(task, theta, *, pairs=8, sigma=0.01, runs=1, generator=None):
    """Per-window PES estimates at fixed ``theta`` over one episode: ``(runs, J, p)``.

    Vicol, Metz & Sohl-Dickstein (2021), Algorithm 2: ``2 * pairs`` particles with
    antithetic perturbations ``eps`` (drawn afresh every window) each keep their
    own inner state and the sum ``xi`` of all perturbations they have received;
    window ``j`` contributes ``1/(N sigma^2) sum_i xi_i L_j(particle i)``. The
    ``xi`` carry the credit that truncation drops, so the episode's total is an
    unbiased estimate of ``grad`` of the Gaussian-smoothed ``F``.
    """
    if not isinstance(pairs, (int, np.integer)) or pairs < 1:
        raise ValueError(f"pairs must be an integer >= 1; got {pairs!r}")
    if not sigma > 0:
        raise ValueError(f"sigma (perturbation scale) must be > 0; got {sigma!r}")
    theta = torch.as_tensor(theta, dtype=DTYPE)
    p = theta.shape[-1]
    state = task.initial_state((runs, 2 * pairs))
    xi = torch.zeros(runs, 2 * pairs, p, dtype=DTYPE)
    out = []
    with torch.no_grad():
        for j in range(task.windows):
            eps = sigma * torch.randn(runs, pairs, p, dtype=DTYPE, generator=generator)
            eps = torch.cat([eps, -eps], 1)
            state, loss = task.unroll(state, theta + eps, j)
            xi = xi + eps
            est = (xi * loss[..., None]).sum(1) / (2 * pairs * sigma ** 2)
            out.append(est / task.windows)
    return torch.stack(out, 1)


def meta_optimize(task, theta0, method, *, episodes=20, lr=0.05, pairs=8, sigma=0.01,
                  seed=0):
    """Online meta-optimisation: update ``theta`` with SGD after every window.

    ``method`` is ``"truncated"`` or ``"pes"``. Inner states (and PES's ``xi``)
    persist across windows and are reset at the end of each episode of
    ``horizon`` steps. Returns the trajectory of ``theta`` ``(episodes*J + 1, p)``.
    With plain SGD and a small ``lr`` the iterates settle where the estimates
    average to zero over an episode: the true optimum for PES (its estimates
    are unbiased), a biased point for truncation.
    """
    if method not in ("truncated", "pes"):
        raise ValueError(f"method must be 'truncated' or 'pes'; got {method!r}")
    gen = torch.Generator().manual_seed(seed)
    theta = torch.as_tensor(theta0, dtype=DTYPE).clone()
    p = theta.shape[-1]
    traj = [theta.clone()]
    n = 1 if method == "truncated" else 2 * pairs
    for _ in range(episodes):
        state = task.initial_state((n,))
        xi = torch.zeros(n, p, dtype=DTYPE)
        for j in range(task.windows):
            if method == "truncated":
                th = theta.detach().clone().requires_grad_(True)
                new_state, loss = task.unroll(tuple(s.detach() for s in state), th[None], j)
                (grad,) = torch.autograd.grad(loss.sum(), th)
                state = tuple(s.detach() for s in new_state)
            else:
                with torch.no_grad():
                    eps = sigma * torch.randn(pairs, p, dtype=DTYPE, generator=gen)
                    eps = torch.cat([eps, -eps], 0)
                    state, loss = task.unroll(state, theta + eps, j)
                    xi = xi + eps
                    grad = (xi * loss[:, None]).sum(0) / (n * sigma ** 2)
            theta = theta - lr * grad
            traj.append(theta.clone())
    return torch.stack(traj)


def fixed_point_1d(fn, lo, hi, iters=30):
    """Root of a scalar decreasing-to-increasing ``fn`` on ``[lo, hi]`` by bisection."""
    flo = fn(lo)
    if flo * fn(hi) > 0:
        raise ValueError(f"no sign change of the gradient on [{lo}, {hi}]")
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fm = fn(mid)
        if fm * flo > 0:
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------
# The same comparison on MNIST: the offline experiment's decay schedule, small scale
# --------------------------------------------------------------------------

def _mlp_batched(params, images):
    """Logits ``(n, N, 10)`` of ``n`` MLPs (params with a leading dim ``n``) on shared images."""
    h = images.reshape(images.shape[0], -1)
    layers = len(params) // 2
    for i in range(layers):
        w, b = params[2 * i], params[2 * i + 1]
        h = (torch.einsum("ni,boi->bno", h, w) if h.dim() == 2
             else torch.einsum("bni,boi->bno", h, w)) + b[:, None, :]
        if i < layers - 1:
            h = torch.relu(h)
    return h


def _mlp_losses(params, images, labels):
    """Mean cross-entropy of each of the ``n`` MLPs: shape ``(n,)``."""
    logits = _mlp_batched(params, images)
    n, N, c = logits.shape
    ce = torch.nn.functional.cross_entropy(logits.reshape(n * N, c), labels.repeat(n),
                                           reduction="none")
    return ce.reshape(n, N).mean(1)


class MNISTMetaTask(MetaTask):
    """The offline MNIST schedule as an online meta-optimization task (small scale).

    The paper's MLP, warm-started as in the offline experiment, trained with SGD
    with momentum ``mu`` (paper convention ``v <- mu v - alpha g, w <- w + v``) for
    ``horizon`` steps on a fixed sequence of minibatches (the same in every episode,
    so ``F`` is a deterministic function of ``theta``), with
    ``alpha_t = exp(theta_0) / (1 + t/K)**exp(theta_1)`` (:func:`schedule_from_theta`).
    ``F(theta) = 1/J sum_j log L(w_{jW})``, ``L`` the mean training loss on a fixed
    evaluation set. A :class:`MetaTask` with its own state and unroll, so
    :func:`truncated_estimates`, :func:`pes_estimates` and :func:`meta_optimize` apply
    unchanged; the state is the flat
    tuple ``(weights..., velocities...)`` with the particles' batch dimensions in front.
    A loss that is not finite or above ``cap`` (a diverging run) counts as ``cap``.
    """

    def __init__(self, train, evaluation, *, horizon=200, window=20, mu=0.9, K=None,
                 batch_size=100, seed=0, warm_steps=50, cap=10.0, dtype=torch.float32,
                 sizes=(784, 100, 100, 10)):
        from .models import mlp_init
        from .offline import StepBatches, warm_start

        if not isinstance(window, (int, np.integer)) or window < 1 or horizon % window:
            raise ValueError(f"window must be an integer >= 1 dividing horizon={horizon}; "
                             f"got {window!r}")
        images, labels = train
        self.dtype = dtype
        self.eval_images, self.eval_labels = (x.to(dtype) if x.is_floating_point() else x
                                              for x in evaluation)
        self.horizon, self.window, self.mu = horizon, window, mu
        self.windows = horizon // window
        self.K = horizon / 4 if K is None else K
        self.log_cap = math.log(cap)
        gen = torch.Generator().manual_seed(seed)
        params = mlp_init(gen, sizes=sizes, dtype=torch.float32)
        state = warm_start(params, StepBatches(images, labels, batch_size, seed + 1),
                           steps=warm_steps)
        self.w0 = tuple(w.to(dtype) for w in state.params)
        self.v0 = tuple(v.to(dtype) for v in state.velocity)
        batches = StepBatches(images, labels, batch_size, seed)
        self.batches = [(x.to(dtype), y) for x, y in batches.take(0, horizon)]

    def initial_state(self, batch=()):
        return tuple(x.expand(*batch, *x.shape) for x in self.w0 + self.v0)

    def _log_loss(self, params):
        log_l = torch.log(_mlp_losses(params, self.eval_images, self.eval_labels))
        bad = ~torch.isfinite(log_l) | (log_l > self.log_cap)
        return torch.where(bad, torch.full_like(log_l, self.log_cap), log_l)

    def unroll(self, state, theta, j):
        """Window ``j`` from ``state`` with ``theta`` ``(..., 2)``; returns state and ``log L``."""
        theta = torch.as_tensor(theta, dtype=DTYPE)
        shape = theta.shape[:-1]
        n = int(np.prod(shape)) if shape else 1
        graph = torch.is_grad_enabled() and theta.requires_grad
        alphas = schedule_from_theta(theta.reshape(n, -1), j * self.window, self.window,
                                     self.K).to(self.dtype)
        k = len(self.w0)
        ws = [x.reshape(n, *x.shape[len(shape):]) for x in state[:k]]
        vs = [x.reshape(n, *x.shape[len(shape):]) for x in state[k:]]
        with torch.enable_grad():
            for t in range(self.window):
                x, y = self.batches[j * self.window + t]
                ws = [w if w.requires_grad else w.detach().requires_grad_(True) for w in ws]
                loss = _mlp_losses(ws, x, y).sum()
                grads = torch.autograd.grad(loss, ws, create_graph=graph)
                a = alphas[:, t]
                vs = [self.mu * v - a.view(n, *([1] * (v.dim() - 1))) * g for v, g in zip(vs, grads)]
                ws = [w + v for w, v in zip(ws, vs)]
                if not graph:
                    ws = [w.detach() for w in ws]
                    vs = [v.detach() for v in vs]
        log_l = self._log_loss(ws)
        new = tuple(x.reshape(*shape, *x.shape[1:]) for x in ws + vs)
        return new, log_l.to(DTYPE).reshape(shape)


def _mnist_sizes(profile):
    checks = [[math.log(0.01), math.log(0.5)], [math.log(0.05), math.log(2.0)]]
    return pick(profile, {
        "smoke": dict(train_limit=2000, eval_examples=500, horizon=10, window=5, pairs=2,
                      check_runs=2, check_thetas=checks[:1], episodes=1, meta_lr=0.05, sigma=0.1),
        "quick": dict(train_limit=10000, eval_examples=1000, horizon=80, window=10, pairs=4,
                      check_runs=24, check_thetas=checks, episodes=10, meta_lr=0.05, sigma=0.1),
        "paper": dict(train_limit=None, eval_examples=5000, horizon=1000, window=50, pairs=16,
                      check_runs=100, check_thetas=checks, episodes=50, meta_lr=0.02, sigma=0.1),
    })


def run_beyond_mnist(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                     resume=True):
    """Truncated hypergradient against PES on the MNIST decay schedule (small scale).

    At a few ``theta = (log alpha_0, log beta)``: the exact gradient of ``F``, the truncated
    estimate, and the Monte Carlo mean of PES episodes; then online meta-optimization with
    each from the same start. CPU only; saved to ``beyond_mnist_{profile}_seed{seed}.npz``.
    """
    seed = check_seed(seed)
    cfg = dict(_mnist_sizes(profile), mu=0.9, batch_size=100, warm_steps=50,
               fd_steps=[0.1, 0.03, 0.01, 0.001], version=2)
    path = result_path("beyond_mnist", profile, seed, results)
    # The data come first (seconds), so that a result made from other data is not reused.
    from .data import load

    data = load("mnist", train=True, root=data_root, limit=cfg["train_limit"])
    if resume:
        found = load_matching(path, cfg, _mnist_expected(cfg), same={"profile": profile, "seed": seed})
        recorded = None if found is None else found[1].get("data", {}).get("fingerprint")
        if found is not None and recorded in (None, data.fingerprint):
            return found
    with run_lock(path):
        _compute_beyond_mnist(path, cfg, profile, seed, data)
    return load_result(path)


def _mnist_expected(cfg):
    k, f = len(cfg["check_thetas"]), len(cfg["fd_steps"])
    expected = {"check_theta": (k, 2), "check_exact": (k, 2), "check_trunc": (k, 2),
                "check_pes_mean": (k, 2), "check_pes_se": (k, 2), "check_F": (k,),
                "check_fd": (k, f, 2), "fd_steps": (f,), "start_F": (), "seconds": ()}
    for method in ("truncated", "pes"):
        expected.update({f"traj_{method}": (None, 2), f"end_{method}": (2,),
                         f"end_F_{method}": (), f"end_final_log_loss_{method}": ()})
    return expected


def _compute_beyond_mnist(path, cfg, profile, seed, data):
    start = time.perf_counter()
    images, labels = data.images, data.labels
    gen = torch.Generator().manual_seed(seed + 7)
    pick_eval = torch.randperm(len(labels), generator=gen)[:cfg["eval_examples"]]
    task = MNISTMetaTask((images, labels), (images[pick_eval], labels[pick_eval]),
                         horizon=cfg["horizon"], window=cfg["window"], mu=cfg["mu"],
                         batch_size=cfg["batch_size"], seed=seed, warm_steps=cfg["warm_steps"])
    out = {}
    thetas = torch.tensor(cfg["check_thetas"], dtype=DTYPE)
    exact, trunc, mean, se, F, fd = [], [], [], [], [], []
    pes_gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    for th in thetas:
        exact.append(task.gradient(th))
        trunc.append(truncated_estimates(task, th).sum(-2))
        est = pes_estimates(task, th, pairs=cfg["pairs"], sigma=cfg["sigma"],
                            runs=cfg["check_runs"], generator=pes_gen).sum(1)
        mean.append(est.mean(0))
        se.append(est.std(0) / math.sqrt(cfg["check_runs"]))
        with torch.no_grad():
            F.append(task.objective(th))
            # central differences of F along each axis: is F smooth at the scales PES sees?
            fd.append(torch.stack([torch.stack([
                (task.objective(th + h * e) - task.objective(th - h * e)) / (2 * h)
                for e in torch.eye(2, dtype=DTYPE)]) for h in cfg["fd_steps"]]))
    out.update(check_fd=torch.stack(fd).numpy(), fd_steps=np.array(cfg["fd_steps"]),
               check_theta=thetas.numpy(), check_exact=torch.stack(exact).numpy(),
               check_trunc=torch.stack(trunc).numpy(), check_pes_mean=torch.stack(mean).numpy(),
               check_pes_se=torch.stack(se).numpy(), check_F=torch.stack(F).numpy(),
               check_seconds=np.array(time.perf_counter() - t0))
    theta0 = thetas[0]
    for method in ("truncated", "pes"):
        t0 = time.perf_counter()
        traj = meta_optimize(task, theta0, method, episodes=cfg["episodes"], lr=cfg["meta_lr"],
                             pairs=cfg["pairs"], sigma=cfg["sigma"], seed=seed)
        out[f"traj_{method}"] = traj.numpy()
        out[f"seconds_{method}"] = np.array(time.perf_counter() - t0)
        with torch.no_grad():
            end = traj[-task.windows:].mean(0)  # mean over the last episode's meta-steps
            out[f"end_{method}"] = end.numpy()
            out[f"end_F_{method}"] = task.objective(end).numpy()
            out[f"end_final_log_loss_{method}"] = _final_log_loss(task, end).numpy()
    with torch.no_grad():
        out["start_F"] = task.objective(theta0).numpy()
        out["start_final_log_loss"] = _final_log_loss(task, theta0).numpy()
    out["seconds"] = np.array(time.perf_counter() - start)
    meta = provenance(profile, "cpu", seed, **cfg)
    meta["data"] = {"source": data.source, "fingerprint": data.fingerprint}  # matched on reuse
    save_result(path, out, meta)


def _final_log_loss(task, theta):
    state = task.initial_state()
    for j in range(task.windows):
        state, loss = task.unroll(state, theta, j)
    return loss


# --------------------------------------------------------------------------
# The explorer's compute function
# --------------------------------------------------------------------------

EXPLORER_DEFAULTS = dict(kappa=1000.0, noise=1.0, horizon=250, lr=0.05, mu=0.9)


def explore(kappa=1000.0, noise=1.0, horizon=250, lr=0.05, mu=0.9, *, n=50, c0=nq.DEFAULT_C0,
            grid=10):
    """Greedy, "optimized" and fixed schedules of one problem, for the explorer.

    * greedy: Theorem 2 (exact);
    * fixed: the slider's ``(lr, mu)`` for every step (exact);
    * optimized: a cheap stand-in for the per-step fit, the best
      :func:`decay_schedule` (momentum ``mu``, ``K = horizon/4``) over a
      ``grid x grid`` grid of ``(alpha_0, beta)``, one batched forward run
      (no gradient steps).
    The problem is :func:`noisy_problem` with ``n`` dimensions. Returns a dict of
    numpy arrays: ``alphas``, ``mus`` and ``losses`` per schedule.
    """
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")
    if not lr > 0:
        raise ValueError(f"lr (learning rate) must be > 0; got {lr!r}")
    if not 0 <= mu < 1:
        raise ValueError(f"mu (momentum) must be in [0, 1); got {mu!r}")
    arrays = noisy_problem(n, kappa, noise, c0)
    with torch.no_grad():
        greedy = nq.greedy_schedule(*arrays, horizon)
        fa = torch.full((horizon,), float(lr), dtype=DTYPE)
        fm = torch.full((horizon,), float(mu), dtype=DTYPE)
        a0 = torch.logspace(-2.5, 0.5, grid, dtype=DTYPE)
        betas = torch.cat([torch.zeros(1, dtype=DTYPE), torch.logspace(-1.5, 1, grid - 1, dtype=DTYPE)])
        ga, gb = (x.reshape(-1) for x in torch.meshgrid(a0, betas, indexing="ij"))
        # one batched run: row 0 is the fixed schedule, the rest the decay grid
        alphas = torch.cat([fa[None], decay_schedule(ga, gb, horizon, horizon / 4)])
        losses = nq.dynamics(*arrays, alphas, torch.full_like(alphas, mu), check=False)
        losses = _finite(losses, losses[..., 0])
        fixed, alphas, losses = losses[0], alphas[1:], losses[1:]
        best = losses[:, -1].argmin()
    return dict(
        steps=np.arange(horizon + 1),
        greedy_alphas=greedy.alphas.numpy(), greedy_mus=greedy.mus.numpy(),
        greedy_losses=greedy.losses.numpy(),
        optimized_alphas=alphas[best].numpy(), optimized_mus=np.full(horizon, float(mu)),
        optimized_losses=losses[best].numpy(),
        optimized_alpha0=ga[best].numpy(), optimized_beta=gb[best].numpy(),
        fixed_alphas=fa.numpy(), fixed_mus=fm.numpy(), fixed_losses=fixed.numpy(),
    )


# --------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------

def _sizes(profile):
    return pick(profile, {
        "smoke": dict(n=50, final_horizon=100, horizons=[1, 3, 10, 30, 100], n_alpha=16, mus=[0.0, 0.9],
                      n_decay=8, map_n=16, map_horizon=50, map_kappas=[1, 100], map_noises=[0, 1],
                      map_gammas=[0.0, 0.5], fit_steps=10, pes_n=20, pes_horizon=50, pes_window=10,
                      pes_episodes=3, pes_pairs=4, grid_1d=41, pes_checks=3,
                      pes_runs=10),
        "quick": dict(n=1000, final_horizon=1000,
                      horizons=[1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000], n_alpha=48,
                      mus=[0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99], n_decay=20, map_n=100,
                      map_horizon=250, map_kappas=[1, 10, 100, 1000, 10000],
                      map_noises=[0, 0.001, 0.01, 0.1, 1, 10], map_gammas=[0.0, 0.5, 1.0], fit_steps=100,
                      pes_n=100, pes_horizon=250, pes_window=10, pes_episodes=40, pes_pairs=8,
                      grid_1d=121, pes_checks=7, pes_runs=100),
        "paper": dict(n=1000, final_horizon=1000,
                      horizons=[1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000], n_alpha=96,
                      mus=[0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995], n_decay=40, map_n=1000,
                      map_horizon=250, map_kappas=[1, 10, 100, 1000, 10000, 100000],
                      map_noises=[0, 0.001, 0.01, 0.1, 1, 10], map_gammas=[0.0, 0.25, 0.5, 0.75, 1.0],
                      fit_steps=500, pes_n=1000, pes_horizon=250, pes_window=10, pes_episodes=100,
                      pes_pairs=32, grid_1d=241, pes_checks=13, pes_runs=400),
    })


def run_beyond(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
               resume=True, mnist=True):
    """All results of the "Beyond the paper" chapter.

    The noisy-quadratic results (``beyond_{profile}_seed{seed}.npz``) and, when ``mnist``,
    the small MNIST comparison of :func:`run_beyond_mnist` (its own file, needs the MNIST
    data), each resumed from its file. Returns ``(arrays, meta)``: the MNIST arrays are
    prefixed ``mnist_`` and its provenance is ``meta["mnist"]``. CPU only; ``device`` is
    recorded, not used.
    """
    seed = check_seed(seed)
    arrays, meta = run_beyond_nqm(profile, device=device, seed=seed, results=results,
                                  resume=resume)
    if mnist:
        m_arrays, m_meta = run_beyond_mnist(profile, device=device, seed=seed,
                                            data_root=data_root, results=results, resume=resume)
        arrays = dict(arrays, **{f"mnist_{k}": v for k, v in m_arrays.items()})
        meta = dict(meta, mnist=m_meta)
    return arrays, meta


def run_beyond_nqm(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                   resume=True):
    """All noisy-quadratic results of the chapter, saved to one file; ``(arrays, meta)``."""
    seed = check_seed(seed)
    cfg = dict(_sizes(profile), kappa=nq.DEFAULT_KAPPA, c0=nq.DEFAULT_C0, version=3)
    path = result_path("beyond", profile, seed, results)
    if resume:
        found = load_matching(path, cfg, _nqm_expected(cfg), same={"profile": profile, "seed": seed})
        if found is not None:
            return found
    with run_lock(path):
        _compute_beyond_nqm(path, cfg, profile, seed)
    return load_result(path)


def _nqm_expected(cfg):
    n = cfg["pes_checks"]
    expected = {"pes_grid": (cfg["grid_1d"],), "pes_F": (cfg["grid_1d"],),
                "pes_exact_grad": (cfg["grid_1d"],), "pes_trunc_grad": (cfg["grid_1d"],),
                "pes_check_theta": (n,), "pes_check_mean": (n,), "pes_check_se": (n,),
                "pes_check_exact": (n,), "greedy_losses": (cfg["final_horizon"] + 1,),
                "greedy_alphas": (cfg["final_horizon"],), "pes_opt": (), "pes_trunc_fixed": (),
                "pes_final_best_theta": (), "pes_final_best_loss": (), "seconds": ()}
    expected.update({f"pes_traj_{method}": None for method in ("truncated", "pes")})
    return expected


def _compute_beyond_nqm(path, cfg, profile, seed):
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = {}
    arrays = noisy_problem(cfg["n"], cfg["kappa"], 1.0, cfg["c0"])
    T = cfg["final_horizon"]
    # 1. horizon sweep: constant (alpha, mu) and the decay family.
    hb = horizon_bias(arrays, cfg["horizons"], T, torch.logspace(-3, 0.5, cfg["n_alpha"]), cfg["mus"])
    out.update({f"const_{k}": v for k, v in hb.items()})
    db = decay_horizon_bias(arrays, cfg["horizons"], T, torch.logspace(-3, 0.5, cfg["n_decay"]),
                            torch.logspace(-2, 1.5, cfg["n_decay"]), mu=0.9)
    out.update({f"decay_{k}": v for k, v in db.items()})
    with torch.no_grad():
        g = nq.greedy_schedule(*arrays, T)
    out["greedy_losses"] = g.losses.numpy()
    out["greedy_alphas"] = g.alphas.numpy()
    det = noisy_problem(cfg["n"], cfg["kappa"], 0.0, cfg["c0"])
    hb0 = horizon_bias(det, cfg["horizons"], T, torch.logspace(-3, 0.5, cfg["n_alpha"]), cfg["mus"])
    out.update({f"det_{k}": v for k, v in hb0.items()})
    # 2. remedies map.
    mp = greedy_ratio_map(cfg["map_kappas"], cfg["map_noises"], cfg["map_gammas"], n=cfg["map_n"],
                          horizon=cfg["map_horizon"], c0=cfg["c0"], fit_steps=cfg["fit_steps"])
    out.update({f"map_{k}": v for k, v in mp.items()})
    # 3. PES vs truncated on a constant learning rate (1-D) and a decay schedule (2-D).
    parr = noisy_problem(cfg["pes_n"], cfg["kappa"], 1.0, cfg["c0"])
    task = MetaTask(parr, cfg["pes_horizon"], cfg["pes_window"], mu=0.0)
    grid = torch.linspace(-6, 0.5, cfg["grid_1d"], dtype=DTYPE)[:, None]
    with torch.no_grad():
        out["pes_grid"] = grid[:, 0].numpy()
        out["pes_F"] = task.objective(grid).numpy()
    out["pes_exact_grad"] = task.gradient(grid)[:, 0].numpy()
    out["pes_trunc_grad"] = truncated_estimates(task, grid).sum(-2)[:, 0].numpy()
    lo, hi = float(grid[0, 0]), float(grid[-1, 0])
    ok = torch.isfinite(torch.as_tensor(out["pes_F"]))
    hi = float(grid[ok][-1, 0])
    out["pes_opt"] = np.array(fixed_point_1d(lambda x: float(task.gradient([x])[0]), lo, hi))
    out["pes_trunc_fixed"] = np.array(fixed_point_1d(
        lambda x: float(truncated_estimates(task, [x]).sum(-2)[0]), lo, hi))
    theta0 = torch.tensor([math.log(0.01)], dtype=DTYPE)
    for method in ("truncated", "pes"):
        out[f"pes_traj_{method}"] = meta_optimize(
            task, theta0, method, episodes=cfg["pes_episodes"], lr=0.02, pairs=cfg["pes_pairs"],
            sigma=0.05, seed=seed).numpy()
    # Monte Carlo check of PES at a few points, with the settings of the runs above.
    checks = torch.linspace(-4.5, 0.0, cfg["pes_checks"], dtype=DTYPE)[:, None]
    gen = torch.Generator().manual_seed(seed + 1)
    est = torch.stack([pes_estimates(task, th, pairs=cfg["pes_pairs"], sigma=0.05,
                                     runs=cfg["pes_runs"], generator=gen).sum(1)[:, 0]
                       for th in checks])
    out["pes_check_theta"] = checks[:, 0].numpy()
    out["pes_check_mean"] = est.mean(1).numpy()
    out["pes_check_se"] = (est.std(1) / math.sqrt(cfg["pes_runs"])).numpy()
    out["pes_check_exact"] = task.gradient(checks)[:, 0].numpy()
    # what each fixed point costs: F, and the final expected loss at the horizon
    with torch.no_grad():
        for key in ("pes_opt", "pes_trunc_fixed"):
            out[f"{key}_F"] = task.objective(torch.tensor([float(out[key])], dtype=DTYPE)).numpy()
            a = torch.full((cfg["pes_horizon"],), math.exp(float(out[key])), dtype=DTYPE)
            out[f"{key}_final_loss"] = nq.dynamics(*parr, a, torch.zeros_like(a))[-1].numpy()
        # the constant learning rate that is best for the final loss alone (a scan)
        a = torch.exp(grid).expand(-1, cfg["pes_horizon"])
        final = _finite(nq.dynamics(*parr, a, torch.zeros_like(a)))[:, -1]
        out["pes_final_best_theta"] = grid[final.argmin(), 0].numpy()
        out["pes_final_best_loss"] = final.min().numpy()
    out["seconds"] = np.array(time.perf_counter() - start)
    save_result(path, out, provenance(profile, "cpu", seed, **cfg))
