"""The numbers and verdicts each section of the offline chapter quotes, one function per section.

Each function returns a small record ``{glue name: value}`` that the chapter glues in one
call (:func:`shortbias_lib.notebook.glue_facts`); Markdown values are for ``{glue:md}``.
The verdicts are chosen here from the numbers, so the tests can check them on small inputs.
"""

import inspect
import math

import numpy as np

from ..experiments.offline import (config as offline_config, smd as offline_smd, surface as offline_surface,
                                   figures as plot_offline)
from ..report import markdown


def runs_facts(archived_config):
    """Section "The runs on this page": the archive commands and the bootstrap's size."""
    first, second = offline_config.ARCHIVE_GPU_COMMANDS
    return {"off_gpu_command_1": markdown(f"`{first}`"), "off_gpu_command_2": markdown(f"`{second}`"),
            "off_cpu_command": markdown(f"`{offline_config.ARCHIVE_COMMAND}`"),
            "off_boot_reps": int(archived_config["bootstrap_reps"])}


def surfaces_facts(config):
    """Section "Meta-objective surfaces": the momentum and Figure 5's factor ``1 / (1 - mu)``."""
    return {"off_mu": float(config["momentum"]), "off_eff_factor": plot_offline.effective_factor(config)}


def beta_trend(betas):
    """How the best beta moves as the horizon grows: ``"falls"`` (strictly), ``"never rises"``
    or ``"does not fall monotonically"``."""
    steps = np.diff(np.asarray(betas, dtype=float))
    return ("falls" if np.all(steps < 0) else "never rises" if np.all(steps <= 0)
            else "does not fall monotonically")


def claims_facts(arrays, config, paper_design):
    """Section "The paper's two claims", for the paper's design (``arrays``, ``config``: seed 0)
    and ``paper_design`` (:func:`~shortbias_lib.experiments.offline.surface.claim_bands` of seeds 0 and 1):
    each claim's numbers per seed, the band's verdict against the paper's bound, the trend of
    the best beta over the horizons, and the edges of the sampled range."""
    first = paper_design[0]["beta_ratio"]
    estimator_k = next(name for name in first.estimators if name.startswith("mean"))
    facts = {"arch_band_reps": first.reps,
             "arch_band_grid": inspect.signature(offline_surface.claim_bands).parameters["grid"].default,
             "arch_band_scale_low": f"{min(first.scales):g}", "arch_band_scale_high": f"{max(first.scales):g}",
             "arch_band_k": int(estimator_k.split()[2])}
    for claim, key in (("beta_ratio", "beta"), ("loss_ratio", "loss")):
        for seed_index, bands in enumerate(paper_design):
            band = bands[claim]
            prefix = f"arch_{key}_s{seed_index}"
            facts.update({prefix: band.value,
                          f"{prefix}_boot_low": band.bootstrap[0], f"{prefix}_boot_high": band.bootstrap[1],
                          f"{prefix}_bw_low": band.bandwidth[0], f"{prefix}_bw_high": band.bandwidth[1],
                          f"{prefix}_est_low": min(band.estimators.values()),
                          f"{prefix}_est_high": max(band.estimators.values())})
        verdict, _, _, low, high = offline_surface.band_verdict([bands[claim] for bands in paper_design])
        facts.update({f"arch_{key}_band_verdict": verdict, f"arch_{key}_band_low": low,
                      f"arch_{key}_band_high": high, f"arch_bound_{key}": offline_surface.CLAIM_BOUNDS[claim]})
    rows = offline_surface.summary_rows(arrays, config)
    facts.update({"arch_beta_trend": beta_trend([row["beta"] for row in rows]),
                  "arch_edges": markdown(offline_surface.edge_sentence(arrays, config)),
                  "arch_T_short": int(config["horizons"][0]), "arch_T_long": int(config["horizons"][-1])})
    return facts


def lr_leaving_sentence(arrays, config):
    """Which schedules leave Figure 6's learning-rate panel, and how low their rates fall."""
    floor, leaving = plot_offline.lr_panel_floor(arrays, config)
    if not leaving:
        return "Every schedule's learning rate stays inside the learning-rate panel."
    return (f"The learning-rate panel ends at {floor:.1e}; " + "; ".join(
        f"the {h}-step optimum's rate falls below it, to {low:.1e}" for h, low in leaving)
        + ", and leaves the panel.")


def curves_facts(arrays, config, name):
    """Section "Training with each horizon's optimum" (Figure 6): ``{name}``, the sentence on the
    schedules that leave the learning-rate panel."""
    return {name: markdown(lr_leaving_sentence(arrays, config))}


def smd_runs(shown):
    """Every SMD run of ``shown`` (``(label, arrays, config)`` per result) with its state and its
    result's summary rows: ``[(label, run, state, rows)]``."""
    return [(label, run, offline_smd.smd_state(run, config), offline_surface.summary_rows(arrays, config))
            for label, arrays, config in shown for run in offline_smd.smd_trajectories(arrays, config)]


def long_horizon_verdict(reached):
    """Whether the runs of the longest SMD horizon converged to the optimum (one bool per run)."""
    if all(reached):
        return "all of them converged to the optimum, as in the paper"
    return (("not all" if any(reached) else "none") + " of them converged to the optimum, so the paper's "
            "statement that SMD converged to the optimum is not reproduced there with these few meta steps")


def horizon_states(runs, config):
    """Per SMD horizon of ``runs`` (:func:`smd_runs`, one configuration's horizons): ``(T, meta
    steps, meta step the annealing starts or None, {state: count}, runs, runs converged inside
    their optimum's 95% interval)``."""
    out, config = [], offline_config.with_smd_annealing(config)
    for h, steps, start in zip(config["smd_horizons"], config["smd_meta_steps"], config["smd_anneal_from"]):
        at = [(run, state, rows) for _, run, state, rows in runs if run["horizon"] == h]
        counts = {name: sum(state.state == name for _, state, _ in at) for name in ("converged", "still moving",
                                                                                 "collapsed")}
        inside = sum(state.state == "converged" and plot_offline.smd_ends_near_optimum(run, rows)
                     for run, state, rows in at)
        annealed = callable(offline_smd.smd_meta_lr(config, h))
        out.append((int(h), int(steps), int(start) if annealed else None, counts, len(at), inside))
    return out


def horizon_states_sentence(per_horizon):
    """One sentence per SMD horizon of :func:`horizon_states`: where its runs end and in which state."""
    return " ".join(
        f"At *T* = {h} ({steps} meta steps, "
        + (f"the meta step decaying from meta step {start} on): " if start is not None else "a constant meta step): ")
        + ", ".join(f"{count} {name}" for name, count in counts.items())
        + f"; {inside} of {n} converged inside their optimum's interval."
        for h, steps, start, counts, n, inside in per_horizon)


def optimum_verdict(per_horizon):
    """Whether SMD converged to the optimum, as the paper says, at each horizon (every run converged
    inside its optimum's interval), from :func:`horizon_states`."""
    def names(rows):
        horizons = [str(h) for h, *_ in rows]
        return "*T* = " + " and ".join(filter(None, (", ".join(horizons[:-1]), horizons[-1])))
    yes = [row for row in per_horizon if row[-1] == row[-2] > 0]
    no = [row for row in per_horizon if row not in yes]
    if not no:
        return f"SMD converged to the optimum at every horizon ({names(yes)}), as in the paper."
    if not yes:
        return f"SMD converged to the optimum at no horizon ({names(no)}): the paper's statement is not reproduced."
    return (f"SMD converged to the optimum at {names(yes)}, as in the paper, but not at {names(no)}: "
            "there the paper's statement is not reproduced.")


def collapse_sentence(label, run, state, config):
    """What a run's collapse was (:func:`offline_smd.collapse_start`): one that lasts to the end,
    or one the run recovered from ("" if neither)."""
    start, length = state.episode
    where = f"The {label} run at *T* = {run['horizon']} from β = {run['beta0']:g}"
    largest = (f"its largest raw hypergradient was {state.largest_hypergrad:,.0f}, at meta step {state.largest_at} "
               f"(clipped to ±{config['smd_clip']:g})")
    if state.state == "collapsed":
        return (f"{where} collapsed: {largest}; its {state.reason}, and it ends with "
                f"α₀ = {10 ** run['log10_alpha0'][-1]:.3g} and meta-loss {run['meta_loss'][-1]:.3f}.")
    if offline_smd.collapse_start(state) >= 0:
        before = run["hypergrad"][start - 1] if start > 0 else np.zeros(2)
        raw = float(before[np.argmax(np.abs(before))])
        return (f"{where} collapsed at meta step {start} ({length} meta steps at the untrained level, after a raw "
                f"hypergradient of {raw:,.0f} at meta step {start - 1}, clipped to ±{config['smd_clip']:g}) "
                f"and recovered: it ends {state.state} with α₀ = {10 ** run['log10_alpha0'][-1]:.3g}, "
                f"though {state.untrained_recent} of its last {state.window} lookaheads still ended at that level.")
    return ""


def smd_facts(shown):
    """Section "Stochastic meta-descent on the surfaces", for ``shown`` (``(label, arrays, config)``
    per result, the first one's config giving the settings): the state criterion's settings, the
    count of runs per state, how many end near their horizon's optimum, where the longest horizon's
    runs from the smallest beta end (and the verdict), and a sentence on each collapse."""
    config = shown[0][2]
    defaults = inspect.signature(offline_smd.smd_state).parameters
    runs = smd_runs(shown)
    per_horizon = horizon_states(runs, config)
    states = [state.state for _, _, state, _ in runs]
    near = [plot_offline.smd_ends_near_optimum(run, rows) for _, run, _, rows in runs]
    longest, smallest = max(config["smd_horizons"]), min(config["smd_betas"])
    ends = [(label, run, state, next(row for row in rows if row["horizon"] == longest))
            for label, run, state, rows in runs if (run["horizon"], run["beta0"]) == (longest, smallest)]
    reached = [plot_offline.smd_ends_near_optimum(run, [row]) and state.state == "converged"
               for _, run, state, row in ends]
    collapses = " ".join(filter(None, (collapse_sentence(label, run, state, config) for label, run, state, _ in runs)))
    return {"arch_smd_examples": int(config["smd_objective_examples"]),
            "arch_smd_untrained": math.log(int(config["sizes"][-1])),
            "arch_smd_margin": defaults["margin"].default, "arch_smd_pinned": defaults["pinned"].default,
            "arch_smd_min_window": defaults["min_window"].default, "arch_smd_tol": f"{defaults['tol'].default:g}",
            "arch_smd_states": ", ".join(f"{states.count(name)} {name}"
                                         for name in ("converged", "still moving", "collapsed")),
            "arch_smd_total": len(runs), "arch_smd_near": sum(near),
            "arch_smd_converged_near": sum(n and s == "converged" for n, s in zip(near, states)),
            "arch_smd_long_T": int(longest), "arch_smd_long_beta0": f"{smallest:g}",
            "arch_smd_long_ends": markdown(" and ".join(f"{10 ** run['log10_beta'][-1]:.3g} ({label}, {state.state})"
                                                        for label, run, state, _ in ends)),
            "arch_smd_long_optima": markdown(" and ".join(f"{row['beta']:.3g}" for *_, row in ends)),
            "arch_smd_long_verdict": long_horizon_verdict(reached),
            "arch_smd_by_horizon": markdown(horizon_states_sentence(per_horizon)),
            "arch_smd_optimum_verdict": markdown(optimum_verdict(per_horizon)),
            "arch_smd_collapses": markdown(collapses or "No run collapsed.")}


def live_facts(arrays, config, live_claims):
    """Section "The live run": both claims and their verdicts (``live_claims``:
    :func:`~shortbias_lib.report.comparisons_of` of the run), the diverged schedules, and the
    SMD runs that end inside their optimum's interval."""
    found = offline_surface.claims(arrays)
    return {"off_T_short": int(config["horizons"][0]), "off_T_long": int(config["horizons"][-1]),
            "off_beta_ratio": float(found["beta_ratio"]), "off_loss_ratio": float(found["loss_ratio"]),
            "off_loss_trained": float(found["trained_loss_ratio"]),
            "off_beta_verdict": live_claims[0].agreement, "off_loss_verdict": live_claims[1].agreement,
            "off_diverged": int((arrays["diverged_step"] >= 0).sum()), "off_samples": len(arrays["diverged_step"]),
            "off_smd_near": plot_offline.smd_near_optimum(arrays, config),
            "off_smd_runs": len(offline_smd.smd_trajectories(arrays, config))}


def exercise_facts(arrays, config, cpu_arrays, cpu_config):
    """The exercises' statements: the paper design's best beta of the shortest and the longest
    horizon and its ``K``, the CPU design's, and the authors' range of log10 beta."""
    rows, cpu_rows = offline_surface.summary_rows(arrays, config), offline_surface.summary_rows(cpu_arrays, cpu_config)
    low, high = config["log10_beta_range"]
    return {"ex_off_beta_short": rows[0]["beta"], "ex_off_beta_long": rows[-1]["beta"], "ex_off_K": float(config["K"]),
            "ex_off_cpu_short": cpu_rows[0]["beta"], "ex_off_cpu_long": cpu_rows[-1]["beta"],
            "ex_off_range_low": low, "ex_off_range_high": high}
