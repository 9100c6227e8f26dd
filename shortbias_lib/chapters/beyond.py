"""The facts of the "Beyond the paper" chapters: one function per section, each returning the
numbers and verdicts its prose quotes as a record (name -> value) for
:func:`shortbias_lib.notebook.glue_facts`.

The inputs are the arrays of :func:`shortbias_lib.experiments.beyond.experiment.run_beyond` (or, for the exercises,
what the solution cells compute). Every verdict the prose states is chosen or checked here: a
claim that the numbers do not support raises :class:`ClaimError` instead of being printed.
"""

import math
import re
import time

import numpy as np

from ..plots import explorer
from ..nqm import horizon_bias
from ..experiments.offline import experiment as offline
from ..report import markdown, markdown_table


class ClaimError(RuntimeError):
    """A sentence of the chapter is not supported by the numbers it is about."""


def _claim(holds, claim, *values):
    if not holds:
        raise ClaimError(f"{claim}: {values}")


_TEX_TEXT = {r"\partial ": "∂", r"\partial": "∂", r"\alpha": "α", r"\beta": "β", r"\kappa": "κ",
             r"\log": "log ", "_0": "₀", "^{-3}": "⁻³"}


def plain_markdown(text):
    """Markdown for ``{glue:md}``, which renders neither ``$...$`` nor roles: the little inline
    math of a chosen sentence becomes text (Greek letters, italic variables)."""
    def plain(match):
        tex = match.group(1)
        for command, letter in _TEX_TEXT.items():
            tex = tex.replace(command, letter)
        return re.sub(r"(?<![A-Za-z])([A-Za-z])(?![A-Za-z])", r"*\1*", tex)
    return markdown(re.sub(r"\$([^$]+)\$", plain, text))


def _at(values, keys, key):
    """``values`` at ``key`` of ``keys``, or nan when the profile did not compute that key."""
    keys = [float(k) for k in keys]
    return float(values[keys.index(float(key))]) if float(key) in keys else float("nan")


# ------------------------------------------------------------------ the bias across horizons

def horizon_curves(arrays):
    """The curves of the horizon figure: best effective learning rate ``alpha / (1 - mu)`` per
    horizon (noisy and deterministic) and the cost at the final horizon of each horizon's best
    constant and decay schedule (loss over the best loss there)."""
    return dict(eff=arrays["const_alpha"] / (1 - arrays["const_mu"]),
                eff_det=arrays["det_alpha"] / (1 - arrays["det_mu"]),
                cost_const=arrays["const_loss_at_final"] / arrays["const_best_final"],
                cost_decay=arrays["decay_loss_at_final"] / arrays["decay_best_final"],
                greedy_ratio=float(arrays["greedy_losses"][-1] / arrays["const_best_final"]))


def horizon_facts(arrays, config):
    """Facts of "The bias as a function of the horizon"; checks that the noisy problem's best
    effective rate falls with the horizon, the deterministic one's rises, short horizons and
    greedy cost something at the final horizon, and the decay family costs more."""
    c = horizon_curves(arrays)
    eff, eff_det, cost_const, cost_decay = c["eff"], c["eff_det"], c["cost_const"], c["cost_decay"]
    _claim(eff[0] > eff[-1], "a short horizon chooses a larger step", eff[0], eff[-1])
    _claim(eff_det[-1] > eff_det[0], "without noise the chosen step rises with the horizon", eff_det[0], eff_det[-1])
    _claim(cost_const.max() > 1 and c["greedy_ratio"] > 1, "short horizons and greedy cost something",
           cost_const.max(), c["greedy_ratio"])
    _claim(cost_decay[:-1].max() > cost_const[:-1].max(), "the decay family costs more", cost_decay, cost_const)
    horizons = arrays["const_horizons"]
    det_first, det_best = float(arrays["det_loss_at_final"][0]), float(arrays["det_best_final"])
    det_note = ("at rounding level, so we do not plot the ratio" if det_best < 1e-10 * det_first else
                f"not at rounding level: with this profile's {int(arrays['const_final_horizon'])} steps the best "
                "constant schedule has not solved the problem, and the $T = 1$ choice ends "
                f"{det_first / det_best:.3g} times higher")
    return dict(by_n=config["n"], by_Tfinal=config["final_horizon"], by_kappa=config["kappa"],
                by_nalpha=config["n_alpha"], by_mus=", ".join(f"{m:g}" for m in config["mus"]),
                by_eff_drop=float(eff[0] / eff[-1]),
                by_cost_10=_at(cost_const, horizons, 10), by_cost_100=_at(cost_const, horizons, 100),
                by_greedy_final=float(arrays["greedy_losses"][-1]),
                by_const_best=float(arrays["const_best_final"]), by_decay_best=float(arrays["decay_best_final"]),
                by_greedy_vs_const=c["greedy_ratio"], by_eff_det_1=float(eff_det[0]),
                by_eff_det_T=float(eff_det[-1]), by_det_final_1=det_first, by_det_best=det_best,
                by_det_note=plain_markdown(det_note), by_seconds=float(arrays["seconds"]))


# ------------------------------------------------- best decay schedule: noisy quadratic and MNIST

def _decay_choices(arrays, config, label):
    return dict(label=label, horizons=np.asarray(config["horizons"], dtype=float),
                alpha0=np.asarray(arrays["best_alpha0"], dtype=float),
                beta=np.asarray(arrays["best_beta"], dtype=float),
                final=np.asarray(arrays["final_train_loss"], dtype=float),
                K=float(config["K"]), samples=int(config["samples"]))


def mnist_decay_runs(profile, seed=0, *, device="cpu", data_root=None, results=None):
    """The offline MNIST experiment's best decay schedule per horizon, from the archived run of
    the paper's design (``archive/``, the paper's time scale) when it is committed, and from this
    profile's live run when its result file exists (the smoke profile's is computed, it is cheap).
    A list of dicts (``label``, ``horizons``, ``alpha0``, ``beta``, ``final``, ``K``, ``samples``)."""
    runs = []
    archived = offline.archive_path(seed=0, profile="archive_gpu")
    if archived.exists():
        a, m = offline.load_offline(archived)
        runs.append(_decay_choices(a, m["config"], "MNIST, paper's design (archived)"))
    if offline.result_path(profile, seed, results).exists() or profile == "smoke":
        a, m = offline.run_offline(profile, device=device, seed=seed, data_root=data_root, results=results,
                                   show_progress=False)
        runs.append(_decay_choices(a, m["config"], f"MNIST, live `{profile}` run"))
    return runs


def mnist_decay_table(mnist_runs):
    """Markdown table of each MNIST run's best schedule per horizon."""
    return markdown_table(
        ["run", "horizon", "best $\\alpha_0$", "best $\\beta$", "training loss at the longest horizon"],
        [(run["label"], int(T), f"{a:.3g}", f"{b:.3g}", f"{f:.3g}") for run in mnist_runs
         for T, a, b, f in zip(run["horizons"], run["alpha0"], run["beta"], run["final"])])


def decay_facts(arrays, mnist_runs, profile):
    """Facts of "Best decay schedule against the horizon": the noisy quadratic's best decay
    exponent over the horizons long enough for the decay to act (``T >= K``; below, ``beta`` is
    hardly identified), and for each MNIST run how much faster the shortest horizon decays and
    what its schedule costs at the longest horizon; says so when this ``profile``'s live run is
    missing."""
    K = float(arrays["decay_K"])
    long_h = arrays["decay_horizons"] >= K
    beta, horizons = arrays["decay_beta"][long_h], arrays["decay_horizons"][long_h]
    cost = (arrays["decay_loss_at_final"] / arrays["decay_best_final"])[long_h]
    sentences = [f"On MNIST ({run['label'].split(', ', 1)[1]}: {run['samples']} sampled schedules, horizons "
                 f"{', '.join(str(int(T)) for T in run['horizons'])}, $K$ = {run['K']:g}) the best decay exponent "
                 f"of the shortest horizon is {run['beta'][0] / run['beta'][-1]:.3g} times that of the longest, "
                 f"and its schedule ends with a training loss {run['final'][0] / run['final'][-1]:.3g} times "
                 "higher after the longest horizon." for run in mnist_runs]
    if not any("live" in run["label"] for run in mnist_runs):
        sentences.append(f"This profile's live MNIST run is not shown: no result of the offline experiment was "
                         f"found for profile `{profile}` (build the offline chapter first, as the book does, or run "
                         f"`python -m shortbias_lib offline_mnist --profile {profile}`).")
    mnist = " ".join(sentences)
    return dict(by_dec_K=K, by_dec_b0=float(beta[0]), by_dec_b1=float(beta[-1]), by_dec_T0=int(horizons[0]),
                by_dec_T1=int(horizons[-1]), by_dec_c0=float(cost[0]),
                by_dec_trend=("falling: shorter horizons choose faster decay" if beta[0] > beta[-1] else
                              "not falling: no faster decay for shorter horizons"),
                by_dec_mnist=plain_markdown(mnist))


# ------------------------------------------------------------------------ remedies: the maps

def map_ratio(arrays, gamma, kappa, noise):
    """The map's greedy / optimized ratio at (gamma, kappa, noise), nan where not computed."""
    keys = [[float(x) for x in arrays[f"map_{name}"]] for name in ("gammas", "kappas", "noises")]
    try:
        index = tuple(k.index(float(v)) for k, v in zip(keys, (gamma, kappa, noise)))
    except ValueError:
        return float("nan")
    return float(arrays["map_ratio"][index])


def map_facts(arrays, config):
    """Facts of "Remedies": greedy is optimal where theory says (no noise, kappa = 1), poor with
    noise and ill-conditioning, a square-root preconditioner helps, an exact one removes the bias;
    whether large batches are a remedy is judged when the map has a small nonzero noise."""
    ratio, kap, noi, gam = (arrays[k] for k in ("map_ratio", "map_kappas", "map_noises", "map_gammas"))
    gam_l, kap_l, noi_l = list(map(float, gam)), list(map(float, kap)), list(map(float, noi))
    k_ref = 1000.0 if 1000.0 in kap_l else kap_l[-1]
    r = lambda g, k, s: map_ratio(arrays, g, k, s)  # noqa: E731
    r_det = float(np.nanmax(np.abs(ratio[:, :, noi_l.index(0.0)] - 1)))
    r_k1 = float(np.nanmax(np.abs(ratio[:, kap_l.index(1.0), :] - 1)))
    r_max, r_max_sqrt = float(np.nanmax(ratio[0])), float(np.nanmax(ratio[gam_l.index(0.5)]))
    _claim(r_det < 1e-3 and r_k1 < 1e-3, "greedy is optimal without noise and at kappa = 1", r_det, r_k1)
    _claim(r(0.0, k_ref, 1.0) > 2, "noise plus ill-conditioning makes greedy poor", r(0.0, k_ref, 1.0))
    _claim(r(0.5, k_ref, 1.0) < r(0.0, k_ref, 1.0) and r_max_sqrt < r_max,
           "a square-root preconditioner helps", r(0.5, k_ref, 1.0), r(0.0, k_ref, 1.0), r_max_sqrt, r_max)
    s_min = min(s for s in noi_l if s > 0)
    rows_ill = [k for k in kap_l if k > 1]
    worse = sum(r(0.0, k, s_min) > r(0.0, k, 1.0) for k in rows_ill)
    small_noise = s_min < 1 and 0.001 in noi_l
    if small_noise:
        _claim(worse >= 1 and r(0.0, k_ref, 0.001) > r(0.0, k_ref, 1.0), "large batches are not a remedy",
               worse, r(0.0, k_ref, 0.001), r(0.0, k_ref, 1.0))
        noise_text = (
            "**Large batches alone are not a remedy here.** The ratio is *not* falling with the noise: in "
            f"{worse} of the {len(rows_ill)} ill-conditioned rows the smallest nonzero noise ($s$ = {s_min:g}) "
            "gives a *larger* ratio than $s = 1$, and the ratio is 1 only at $s = 0$. With a batch 1000 times "
            f"larger ($s = 10^{{-3}}$) the ratio at $\\kappa$ = {k_ref:.0f} is {r(0.0, k_ref, 0.001):.3g}, "
            f"against {r(0.0, k_ref, 1.0):.3g} at $s = 1$.")
    else:
        noise_text = (
            "**Large batches**: this profile's map has no noise level between 0 and 1 "
            f"(noises {', '.join(f'{x:g}' for x in noi_l)}), so it cannot say how the ratio changes as the "
            "batch grows; the `quick` profile's map can, and Exercises 1 and 3 below measure it in every profile.")
    if 1.0 in gam_l:
        newton = float(np.nanmax(np.abs(ratio[gam_l.index(1.0)] - 1)))
        _claim(newton < 1e-3, "an exact preconditioner makes greedy optimal", newton)
        newton_text = (f"an exact one makes the problem spherical and the ratio is 1 everywhere (to within "
                       f"{newton:.1e});")
    else:
        newton_text = ("an exact one makes the problem spherical, where greedy is optimal (this profile's map "
                       "does not include it; the `quick` profile's does);")
    return dict(by_map_T=config["map_horizon"], by_map_steps=config["fit_steps"], by_map_n=config["map_n"],
                by_map_seconds=float(arrays["map_seconds"]), by_kref=k_ref,
                by_r_paper=r(0.0, k_ref, 1.0), by_r_paper_sqrt=r(0.5, k_ref, 1.0), by_r_max=r_max,
                by_r_max_sqrt=r_max_sqrt, by_r_det_max=r_det, by_r_k1_max=r_k1, by_paper_ratio=63.86 / 4.25,
                by_noise_bullet=plain_markdown(noise_text), by_newton_text=plain_markdown(newton_text),
                by_conclusion_noise=plain_markdown(
                    "holds for noise only in the limit" if small_noise else
                    "cannot be judged for noise from this profile's map (see the `quick` profile)"))


# ------------------------------------------------------------------------------ the explorer

def explorer_timing(explore_kw, reps=5):
    """What one slider move costs (computing and drawing the figure, not displaying it): the
    median over ``reps`` updates at the defaults, and one at the largest horizon, in ms."""
    import matplotlib.pyplot as plt

    def one_update(**kw):
        start = time.perf_counter()
        fig = explorer.plot_explore(horizon_bias.explore(**kw, **explore_kw), explorer.title(**kw))
        fig.canvas.draw()
        plt.close(fig)
        return time.perf_counter() - start

    defaults = horizon_bias.EXPLORER_DEFAULTS
    one_update(**defaults)   # the first call pays for imports and caches
    times = [one_update(**defaults) for _ in range(reps)]
    return dict(by_exp_n=explore_kw["n"], by_exp_grid=explore_kw["grid"], by_exp_reps=reps,
                by_exp_ms=1000 * float(np.median(times)),
                by_exp_ms_long=1000 * one_update(**dict(defaults, horizon=500)))


# ------------------------------------------------------------------------------- exercises

def exercise1_facts(small_noise, paper_noise, spherical, zero_noise, arrays):
    """Exercise 1: greedy / optimized ratios of the explorer at the smallest noise (``small_noise``)
    and at ``s = 1`` (``paper_noise``), dicts over kappa that include 1000; at ``kappa = 1`` over the
    noise (``spherical``); the per-step fit's ratio at zero noise (``zero_noise``); the map's
    ``arrays`` for the same comparison where the profile's map has it."""
    widen = [small_noise[k] / paper_noise[k] for k in small_noise]
    _claim(small_noise[1000.0] > paper_noise[1000.0] > 1, "the gap widens at low noise",
           small_noise[1000.0], paper_noise[1000.0])
    _claim(min(widen) > 1, "the gap widens at low noise for every kappa", widen)
    _claim(max(spherical) <= 1 + 1e-9, "greedy is optimal at kappa = 1", spherical)
    _claim(abs(zero_noise - 1) < 1e-6, "greedy is optimal at zero noise", zero_noise)
    at_small, at_paper = map_ratio(arrays, 0.0, 1000.0, 0.001), map_ratio(arrays, 0.0, 1000.0, 1.0)
    if math.isnan(at_small) or math.isnan(at_paper):
        map_text = "(this profile's map has no small nonzero noise; the `quick` profile's does)"
    else:
        _claim(at_small > at_paper, "the map's gap widens at low noise", at_small, at_paper)
        map_text = (f"at $\\kappa$ = 1000 a ratio of {at_small:.3g} at $s = 10^{{-3}}$ against "
                    f"{at_paper:.3g} at $s = 1$")
    return dict(by_ex1_small=small_noise[1000.0], by_ex1_paper=paper_noise[1000.0], by_ex1_widen_min=min(widen),
                by_ex1_k1_max=max(spherical), by_ex1_det=zero_noise, by_ex1_map=plain_markdown(map_text))


def exercise2_facts(run):
    """Exercise 2: greedy's effective step collapses within 50 steps, the optimized schedule steps
    larger early (at a higher loss at step 50) and ends below greedy with the lower final loss;
    ``run`` is :func:`~shortbias_lib.nqm.horizon_bias.explore`'s result."""
    greedy = run["greedy_alphas"] / (1 - run["greedy_mus"])
    optimized = run["optimized_alphas"] / (1 - run["optimized_mus"])
    loss_g, loss_o = run["greedy_losses"], run["optimized_losses"]
    _claim(greedy[49] < greedy[0] / 10, "greedy collapses within tens of steps", greedy[0], greedy[49])
    _claim(optimized[:50].mean() > greedy[:50].mean() and loss_o[50] > loss_g[50],
           "the optimized schedule steps larger early, at a higher loss", optimized[:50].mean(), greedy[:50].mean())
    _claim(optimized[-1] < greedy[-1] and loss_o[-1] < loss_g[-1], "the optimized schedule ends below greedy",
           optimized[-1], greedy[-1])
    values = dict(g0=greedy[0], g50=greedy[49], o_early=optimized[:50].mean(), g_early=greedy[:50].mean(),
                  o_end=optimized[-1], g_end=greedy[-1], loss_o50=loss_o[50], loss_g50=loss_g[50])
    return {f"by_ex2_{name}": float(v) for name, v in values.items()}


def exercise3_facts(ratios):
    """Exercise 3: over decreasing noise ending at zero the ratio rises, peaks inside, falls, and
    is 1 at zero noise."""
    ratios = np.asarray(ratios, dtype=float)
    peak = int(np.argmax(ratios))
    _claim(0 < peak < len(ratios) - 1, "the ratio peaks at an intermediate noise", ratios)
    _claim(np.all(np.diff(ratios[:peak + 1]) > 0) and np.all(np.diff(ratios[peak:]) < 0),
           "the ratio rises, then falls", ratios)
    _claim(abs(ratios[-1] - 1) < 1e-6, "the ratio is 1 at zero noise", ratios)
    return dict(by_ex3_ratios=", ".join(f"{r:.3g}" for r in ratios))


def exercise4_facts(ratios):
    """Exercise 4: over increasing preconditioner exponents ending at 1 the ratio falls steadily
    to 1."""
    ratios = np.asarray(ratios, dtype=float)
    _claim(np.all(np.diff(ratios) < 0) and abs(ratios[-1] - 1) < 1e-6, "the ratio falls steadily to 1", ratios)
    return dict(by_ex4_ratios=", ".join(f"{r:.3g}" for r in ratios))


def exercise5_facts(ratios):
    """Exercise 5: optimum / truncated fixed point for growing windows, the last one the whole
    horizon: above 1 and shrinking, and 1 (no truncation) for the last."""
    _claim(all(r > 1.01 for r in ratios[:-1]) and np.all(np.diff(ratios) < 0) and abs(ratios[-1] - 1) < 1e-3,
           "truncation's fixed point lies below the optimum, less so for longer windows, not at all for one",
           ratios)
    return dict(by_ex5_ratios=", ".join(f"{r:.3g}" for r in ratios))


def exercise6_facts(by_pairs, by_sigma, by_sigma_independent, one_window, twenty_windows):
    """Exercise 6: standard deviations of PES's episode estimate for 1, 4 and 16 pairs (a factor
    near 4 from 1 to 16), for decreasing sigma with antithetic pairs (bounded) and with
    independent perturbations (growing like 1/sigma), and for one window against twenty."""
    _claim(2.5 < by_pairs[0] / by_pairs[-1] < 6.5, "the spread falls like 1/sqrt(P)", by_pairs)
    _claim(max(by_sigma) < 2 * min(by_sigma), "antithetic pairs keep the spread bounded as sigma -> 0", by_sigma)
    _claim(by_sigma_independent[-1] > 30 * by_sigma_independent[0],
           "independent perturbations' spread grows like 1/sigma", by_sigma_independent)
    _claim(twenty_windows > one_window, "more windows, more variance", one_window, twenty_windows)
    listed = lambda values: ", ".join(f"{v:.3g}" for v in values)  # noqa: E731
    return dict(by_ex6_pairs=listed(by_pairs), by_ex6_sigmas=listed(by_sigma),
                by_ex6_plain=listed(by_sigma_independent), by_ex6_one_window=one_window,
                by_ex6_twenty=twenty_windows)


# -------------------------------------------------------------------- PES on the noisy quadratic

def pes_facts(arrays, config):
    """Facts of the PES section on the noisy quadratic: the optimum of F against truncation's
    fixed point and what each costs, PES's Monte Carlo check, where the online runs end. Checks
    that truncation's fixed point lies below the optimum and is worse in F, that PES's means
    match the exact gradient (within 4 standard errors), and that online truncation moves up
    from its start without passing its fixed point; where PES ends is chosen from the numbers."""
    opt, tfix = float(arrays["pes_opt"]), float(arrays["pes_trunc_fixed"])
    F_opt, F_trunc = float(arrays["pes_opt_F"]), float(arrays["pes_trunc_fixed_F"])
    _claim(tfix < opt and F_trunc > F_opt, "truncation's fixed point lies below the optimum, at a worse F",
           tfix, opt, F_trunc, F_opt)
    z = np.abs(arrays["pes_check_mean"] - arrays["pes_check_exact"]) / arrays["pes_check_se"]
    _claim(z.max() < 4, "PES's means lie on the exact gradient", z)
    trunc = arrays["pes_traj_truncated"][:, 0]
    _claim(trunc[0] < trunc[-1] < tfix + 0.05, "online truncation creeps up to its fixed point, not past it",
           trunc[0], trunc[-1], tfix)
    tail = arrays["pes_traj_pes"][-(len(arrays["pes_traj_pes"]) // 2):, 0]
    near = abs(tail.mean() - opt) < max(0.5, 2 * tail.std())
    where = ("around the true optimum" if near else
             f"still far from the true optimum ($\\alpha$ = {math.exp(opt):.3g}): this profile's "
             f"{config['pes_episodes']} episodes of small meta-steps are too few to get there")
    return dict(by_pes_n=config["pes_n"], by_pes_T=config["pes_horizon"], by_pes_W=config["pes_window"],
                by_pes_pairs=2 * config["pes_pairs"], by_pes_episodes=config["pes_episodes"],
                by_pes_runs=config["pes_runs"], by_kappa=config["kappa"],
                by_alpha_opt=math.exp(opt), by_alpha_trunc=math.exp(tfix), by_alpha_ratio=math.exp(opt - tfix),
                by_loss_opt=float(arrays["pes_opt_final_loss"]),
                by_loss_trunc=float(arrays["pes_trunc_fixed_final_loss"]), by_F_opt=F_opt, by_F_trunc=F_trunc,
                by_F_pct=100 * (math.exp(F_trunc - F_opt) - 1),
                by_alpha_final=math.exp(float(arrays["pes_final_best_theta"])),
                by_loss_final_best=float(arrays["pes_final_best_loss"]),
                by_pes_end=float(np.exp(tail.mean())), by_pes_end_sd=float(tail.std()),
                by_trunc_end=float(np.exp(trunc[-1])), by_pes_zmax=float(z.max()), by_pes_checks=len(z),
                by_pes_where=plain_markdown(where), by_seconds=float(arrays["seconds"]))


# ------------------------------------------------------------------------- PES on MNIST

def _mnist_z(arrays):
    exact, se = arrays["mnist_check_exact"], arrays["mnist_check_pes_se"]
    return (np.abs(arrays["mnist_check_pes_mean"] - exact) / se,
            np.abs(arrays["mnist_check_trunc"] - exact) / se)


def pes_mnist_facts(arrays, config):
    """Facts of the MNIST comparison: its settings (``config``, the MNIST part's), how far PES and
    truncation are from the exact gradient, the sign of truncation's error, where the online runs
    end, and how rough F is along ``log alpha_0`` (spread of central differences over shrinking
    steps)."""
    theta, exact, trunc = arrays["mnist_check_theta"], arrays["mnist_check_exact"], arrays["mnist_check_trunc"]
    z_pes, z_trunc = _mnist_z(arrays)
    end_F = {m: float(arrays[f"mnist_end_F_{m}"]) for m in ("truncated", "pes")}
    fd, steps = arrays["mnist_check_fd"], arrays["mnist_fd_steps"]
    spread = (fd[:, :, 0].max(1) - fd[:, :, 0].min(1)) / np.abs(exact[:, 0])
    understates = np.all((exact[:, 0] < 0) & (trunc[:, 0] <= 0) & (np.abs(trunc[:, 0]) < np.abs(exact[:, 0])))
    n, all_ = len(theta), "all " if len(theta) > 1 else ""
    sign = (f"At {all_}{n} point{'s' if n > 1 else ''} the truncated estimate understates how much a larger "
            "$\\alpha_0$ would lower $F$ (same sign as the exact derivative, smaller magnitude): the short-horizon "
            "bias towards small learning rates, seen through one window at a time." if understates else
            "The truncated estimate's error in $\\partial F / \\partial\\log\\alpha_0$ does not have one sign "
            "over the checked points.")
    farthest = np.all(np.abs(fd[:, :, 0] - exact[:, :1]).argmax(1) == len(steps) - 1)
    metz = ("Metz et al. (*Understanding and correcting pathologies in the training of learned optimizers*, "
            "ICML 2019) and the PES paper")
    rough = (f"$F$ is rough in the learning rate at these scales, as {metz} describe for unrolled optimization"
             if spread.max() > 0.2 else
             "at this profile's scale the differences stay within 20% of the exact derivative, so this run shows "
             f"no roughness of $F$ in the learning rate; {metz} describe it for longer unrolls")
    facts = dict(
        by_m_T=config["horizon"], by_m_W=config["window"], by_m_train=config["train_limit"] or 60000,
        by_m_eval=config["eval_examples"], by_m_particles=2 * config["pairs"], by_m_sigma=config["sigma"],
        by_m_runs=config["check_runs"], by_m_episodes=config["episodes"],
        by_m_seconds=float(arrays["mnist_seconds"]), by_m_zpes_max=float(z_pes.max()), by_m_ncomp=int(z_pes.size),
        by_m_zpes_note=plain_markdown(
            f" ({int((z_pes > 3).sum())} of them more than 3 standard errors off; see the finite differences "
            "below)" if z_pes.max() > 3 else " (none of them more than 3 standard errors off)"),
        by_m_ztrunc_max=float(z_trunc.max()), by_m_ztrunc_min=float(z_trunc.min()),
        by_m_trunc_relerr=float(100 * np.max(np.abs(trunc - exact) / np.abs(exact))),
        by_m_sign=plain_markdown(sign), by_m_a0_start=float(np.exp(theta[0, 0])),
        by_m_b_start=float(np.exp(theta[0, 1])), by_m_F_start=float(arrays["mnist_start_F"]),
        by_m_better="PES" if end_F["pes"] < end_F["truncated"] else "truncation",
        by_m_spread_min=float(spread.min()), by_m_spread_max=float(spread.max()),
        by_m_fd_note=plain_markdown(" (the smallest step is the farthest from it at every point)" if farthest else
                                    " (the smallest step is not the farthest from it at every point)"),
        by_m_rough=plain_markdown(rough))
    for m in ("truncated", "pes"):
        end = np.exp(arrays[f"mnist_end_{m}"])
        facts.update({f"by_m_a0_{m}": float(end[0]), f"by_m_b_{m}": float(end[1]), f"by_m_F_{m}": end_F[m]})
    return facts


def pes_mnist_check_table(arrays):
    """Markdown table of the MNIST gradient check: exact, truncated and PES per point and component."""
    theta, exact, trunc = arrays["mnist_check_theta"], arrays["mnist_check_exact"], arrays["mnist_check_trunc"]
    pes, se = arrays["mnist_check_pes_mean"], arrays["mnist_check_pes_se"]
    z_pes, z_trunc = _mnist_z(arrays)
    return markdown_table(
        ["$\\alpha_0$", "$\\beta$", "component", "exact", "truncated (\\|z\\|)", "PES mean ± s.e. (\\|z\\|)"],
        [(f"{np.exp(th[0]):.3g}", f"{np.exp(th[1]):.3g}", name, f"{exact[i, c]:.3g}",
          f"{trunc[i, c]:.3g} ({z_trunc[i, c]:.1f})", f"{pes[i, c]:.3g} ± {se[i, c]:.2g} ({z_pes[i, c]:.1f})")
         for i, th in enumerate(theta) for c, name in enumerate(["log alpha_0", "log beta"])])


def pes_mnist_fd_table(arrays, sigma):
    """Markdown table of central differences of F along ``log alpha_0`` for shrinking steps, next
    to the exact derivative and PES's mean (perturbation scale ``sigma``)."""
    theta, exact, fd = arrays["mnist_check_theta"], arrays["mnist_check_exact"], arrays["mnist_check_fd"]
    return markdown_table(
        ["$\\alpha_0$", "$\\beta$", "exact (reverse mode)", *(f"$h$ = {h:g}" for h in arrays["mnist_fd_steps"]),
         f"PES ($\\sigma$ = {sigma:g})"],
        [(f"{np.exp(th[0]):.3g}", f"{np.exp(th[1]):.3g}", f"{exact[i, 0]:.3g}", *(f"{v:.3g}" for v in fd[i, :, 0]),
          f"{arrays['mnist_check_pes_mean'][i, 0]:.3g}") for i, th in enumerate(theta)])
