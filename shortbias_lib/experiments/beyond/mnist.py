"""Truncated hypergradient against PES on MNIST: the offline experiment's decay schedule, small scale.

:class:`MNISTMetaTask` is the offline MNIST schedule ``(log alpha_0, log beta)`` as a
:class:`~shortbias_lib.nqm.pes.MetaTask`, so the estimators of :mod:`shortbias_lib.nqm.pes` apply
unchanged; :func:`run_beyond_mnist` compares them against the exact gradient (reverse mode
through the whole unroll, second order) and saves ``beyond_mnist_{profile}_seed{seed}.npz``.
"""

import math
import time

import numpy as np
import torch

from ...nqm.problem import DTYPE
from ...nqm.pes import MetaTask, meta_optimize, pes_estimates, schedule_from_theta, truncated_estimates
from ...profiles import pick
from ...runs import check_seed, provenance, resolve_device, result_path, run_or_resume, save_result
from ...engine.training import momentum_step


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
        from ...engine.batches import StepBatches
        from ...engine.models import mlp_init
        from ...engine.warm_start import warm_start

        self.set_windows(horizon, window, mu, K)
        images, labels = train
        self.dtype = dtype
        self.eval_images, self.eval_labels = (x.to(dtype) if x.is_floating_point() else x
                                              for x in evaluation)
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
                ws, vs = momentum_step(ws, vs, grads, alphas[:, t], self.mu)
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
    each from the same start. CPU only (``device`` is checked, ``cpu`` recorded); saved to
    ``beyond_mnist_{profile}_seed{seed}.npz``; returns its :class:`~shortbias_lib.runs.Result`.
    """
    seed = check_seed(seed)
    resolve_device(device)
    cfg = dict(_mnist_sizes(profile), mu=0.9, batch_size=100, warm_steps=50,
               fd_steps=[0.1, 0.03, 0.01, 0.001], version=2)
    path = result_path("beyond_mnist", profile, seed, results)
    # The data come first (seconds), so that a result made from other data is not reused.
    from ...data import load

    data = load("mnist", train=True, root=data_root, limit=cfg["train_limit"])
    return run_or_resume(path, cfg, lambda: _compute_beyond_mnist(path, cfg, profile, seed, data),
                         resume=resume, expected=_mnist_expected(cfg), same={"profile": profile, "seed": seed},
                         reuse=lambda meta: meta.get("data", {}).get("fingerprint") in (None, data.fingerprint))


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
            out[f"end_final_log_loss_{method}"] = task.window_losses(end)[-1].numpy()
    with torch.no_grad():
        out["start_F"] = task.objective(theta0).numpy()
        out["start_final_log_loss"] = task.window_losses(theta0)[-1].numpy()
    out["seconds"] = np.array(time.perf_counter() - start)
    meta = provenance(profile, "cpu", seed, **cfg)
    meta["data"] = {"source": data.source, "fingerprint": data.fingerprint}  # matched on reuse
    save_result(path, out, meta)
