"""The tables and facts of the chapter ``nqm_prediction``: one facts function per section.

Each facts function returns a dict name -> value for :func:`shortbias_lib.notebook.glue_facts`
(numbers as floats or ints, sentences whose wording depends on the run as Markdown); every
verdict the prose states is decided here. The network's side (``rows``, ``claims``) comes from
:func:`shortbias_lib.experiments.offline.surface.summary_rows` and
:func:`~shortbias_lib.experiments.offline.surface.claims`
of the archived offline run; the quadratic's from :mod:`shortbias_lib.nqm.prediction`.
"""

import numpy as np

from ..nqm.prediction import ALT_FLOORS, FLOOR
from ..report import markdown, markdown_table

__all__ = ["sizes_table", "measurement_facts", "comparison_table", "later_table", "later_facts", "trend",
           "alpha_sentence", "verdict", "comparison_facts"]


def sizes_table(sizes, m, n_train, seconds):
    """The Markdown table of a measurement's sizes (a profile's ``SIZES`` entry) and its time."""
    return markdown_table(["quantity", "this run"], [
        ("training examples (subsample)", f"{sizes['examples']:,} of {n_train:,}"),
        ("top Ritz pairs kept / Lanczos steps", f"{sizes['k']} / {sizes['top_steps']}"),
        ("SLQ probes x steps (deflated)", f"{sizes['probes']} x {sizes['slq_steps']}"),
        ("Lanczos steps from the gradient", sizes["grad_steps"]),
        ("curvature bins of the bulk", sizes["bins"]),
        ("schedule grid (main; sensitivity)", f"{sizes['grid'][0]} x {sizes['grid'][1]}; "
         f"{sizes['alt_grid'][0]} x {sizes['alt_grid'][1]}"),
        ("parameters", f"{int(m['dim']) + sizes['k']:,}"),
        ("time to measure", f"{seconds:.0f} s")])


def measurement_facts(m, predictions):
    """Section "The measurement": the floors, the top curvatures, what the main floor drops,
    how much of the measured noise the quadratic's dimensions carry (more than all of it means
    the per-direction estimates overcount), the losses, and the largest noise correlation
    between two top directions. ``predictions``: :func:`~shortbias_lib.nqm.prediction.predict_all`."""
    nqm, info, _ = predictions[FLOOR]
    lam_max = float(m["top_values"][0])
    corr = m["noise_corr"]
    covered = 100 * info["noise_covered"]
    coverage = (f"carry {covered:.0f}% of it (the rest lies below the floor, plus the estimation "
                "error of the SLQ Ritz vectors)" if info["noise_covered"] <= 1 else
                f"add up to {covered:.0f}% of it, more than the total: the per-direction estimates "
                "(from SLQ Ritz vectors with few probes) overcount, so this measurement cannot say how much noise "
                "lies below the floor")
    return {"np_floor_rel": FLOOR, "np_alt_floors": " and ".join(f"{f:.0e}" for f in ALT_FLOORS),
            "np_lam_max": lam_max, "np_lam_k": float(m["top_values"][-1]), "np_k": len(m["top_values"]),
            "np_floor": FLOOR * lam_max,
            "np_dropped_dirs": 100 * info["dropped_directions"], "np_dropped_grad": 100 * info["dropped_grad2"],
            "np_noise_cov": covered, "np_noise_cov_md": markdown(coverage),
            "np_total_noise": float(m["total_noise"]), "np_loss": float(m["loss"]),
            "np_excess": info["initial_excess"],
            "np_offdiag": float(np.abs(corr - np.diag(np.diag(corr))).max()) if len(corr) > 1 else 0.0,
            "np_dims": len(nqm[0])}


def comparison_table(rows, predictions, replicate):
    """The Markdown table of measured and predicted best schedules per horizon: the main floor,
    the other floors and a second measurement (``replicate``, main floor)."""
    pred = predictions[FLOOR][2]
    header = ["horizon $T$", "measured best $\\beta$ [95%]", "predicted best $\\beta$",
              *(f"predicted, floor {f:g}" + "$\\lambda_{\\max}$" for f in ALT_FLOORS),
              "second measurement", "measured best $\\alpha_0$", "predicted best $\\alpha_0$", "second measurement"]
    return markdown_table(header, [
        (r["horizon"], f"{r['beta']:.3g} [{r['beta_low']:.2g}, {r['beta_high']:.2g}]"
         f"{' (' + r['beta_edge'] + ' end)' if r['beta_edge'] else ''}", f"{10.0 ** pred['log10_beta'][k]:.3g}",
         *(f"{10 ** predictions[f][2]['log10_beta'][k]:.3g}" for f in ALT_FLOORS),
         f"{10 ** replicate['log10_beta'][k]:.3g}",
         f"{r['alpha0']:.3g}", f"{10 ** pred['log10_alpha0'][k]:.3g}", f"{10 ** replicate['log10_alpha0'][k]:.3g}")
        for k, r in enumerate(rows)])


def later_table(later, schedule):
    """The Markdown table of :func:`~shortbias_lib.nqm.prediction.later_points` along ``schedule``
    (a summary row with ``alpha0`` and ``beta``)."""
    return markdown_table(
        [f"step (schedule $\\alpha_0$ = {schedule['alpha0']:.3g}, $\\beta$ = {schedule['beta']:.3g})",
         "training loss (subsample)", "$\\lVert g \\rVert^2$", "top Ritz values", "$\\operatorname{tr} C / B$"],
        [(p["step"], f"{p['loss']:.3g}", f"{p['grad_norm2']:.3g}", ", ".join(f"{v:.3g}" for v in p["top_values"]),
          f"{p['total_noise']:.3g}") for p in later])


def later_facts(later):
    """Section "Does the warm-start quadratic stay put?": the top curvature, total noise and
    squared gradient norm at the warm start and at the last point, and whether the noise fell."""
    first, last = later[0], later[-1]
    noise_fell = last["total_noise"] < first["total_noise"]
    return {"np_later_T": int(last["step"]),
            "np_later_lam0": float(first["top_values"][0]), "np_later_lam": float(last["top_values"][0]),
            "np_later_noise0": float(first["total_noise"]), "np_later_noise": float(last["total_noise"]),
            "np_later_g0": float(first["grad_norm2"]), "np_later_g": float(last["grad_norm2"]),
            "np_noise_sentence": markdown(
                "The noise shrinks as the network fits the data, so a schedule that decays slowly pays "
                "less for its large late steps than the frozen quadratic charges it." if noise_fell else
                "The noise does not shrink along the schedule, so the frozen noise level alone does not "
                "explain the gap; the changing curvature and the non-quadratic loss must.")}


def trend(values):
    """'falls' / 'rises' / 'is not monotone' for a sequence over increasing horizons."""
    d = np.diff(np.log10(values))
    return "falls" if np.all(d <= 0) and d.sum() < 0 else "rises" if np.all(d >= 0) and d.sum() > 0 \
        else "is not monotone"


def alpha_sentence(alpha_factor):
    """How the network's best initial learning rates compare with the predicted ones, from their
    ratios ``alpha_factor`` (network over prediction, every horizon and measurement)."""
    low, high = alpha_factor.min(), alpha_factor.max()
    if low > 1:
        return (f"The predicted best initial learning rates are {low:.2g} to {high:.2g} times smaller "
                "than the network's, at every horizon and in both measurements.")
    if high < 1:
        return (f"The predicted best initial learning rates are {1 / high:.2g} to {1 / low:.2g} times larger "
                "than the network's, at every horizon and in both measurements.")
    return ("The ratio of the network's best initial learning rate to the predicted one ranges "
            f"from {low:.2g} to {high:.2g} across horizons and "
            "the two measurements: the initial learning rate is not pinned down.")


def verdict(same_trend, n_inside, n_horizons, ratio_inside, loss_inside, pred_beta_ratio, meas_beta_ratio):
    """The chapter's one-sentence answer: the direction of the bias predicted or not, and its size
    (every best beta and both ratios inside the network's intervals) or not."""
    if not same_trend:
        return "In short, the quadratic does not predict the network's bias, not even its direction."
    if n_inside == n_horizons and ratio_inside and loss_inside:
        return "In short, the quadratic predicts both the direction and the size of the network's bias."
    return (f"In short, the quadratic predicts the direction of the network's bias, not its size: "
            f"{n_inside} of {n_horizons} predicted best decay exponents lie inside the "
            f"network's 95% intervals, and the best-β ratio of the shortest and longest horizons is "
            f"{pred_beta_ratio:,.0f} predicted against {meas_beta_ratio:,.0f} measured.")


def _inside(value, interval):
    return interval[0] <= value <= interval[1]


def comparison_facts(rows, claims, predictions, replicate, edge_sentence):
    """Sections "Where the prediction holds / breaks / why": the quadratic's best schedules
    (``predictions`` of :func:`~shortbias_lib.nqm.prediction.predict_all`, and a ``replicate``
    measurement's main prediction) against the network's (``rows``, ``claims`` and
    ``edge_sentence`` of :mod:`shortbias_lib.experiments.offline.surface`), with the verdict."""
    pred = predictions[FLOOR][2]
    horizons = [r["horizon"] for r in rows]
    measured_beta = np.array([r["beta"] for r in rows])
    predicted_beta = 10.0 ** pred["log10_beta"]
    inside = [r["beta_low"] <= b <= r["beta_high"] for r, b in zip(rows, predicted_beta)]
    pred_loss_ratio, meas_loss_ratio = pred["loss_ratio"], float(claims["loss_ratio"])
    log_gap = np.abs(np.log10(predicted_beta) - np.log10(measured_beta))
    alt_ratios = [predictions[f][2]["loss_ratio"] for f in ALT_FLOORS]
    alpha_factor = np.concatenate([np.array([r["alpha0"] for r in rows]) / 10.0 ** p["log10_alpha0"]
                                   for p in (pred, replicate)])
    same_trend = trend(predicted_beta) == trend(measured_beta)
    loss_inside = _inside(pred_loss_ratio, claims["loss_ratio_interval"])
    return {
        "np_T_short": horizons[0], "np_T_long": horizons[-1], "np_H": len(horizons),
        "np_pred_trend": trend(predicted_beta), "np_meas_trend": trend(measured_beta),
        "np_trend_verdict": "agree" if same_trend else "disagree",
        "np_inside": int(np.sum(inside)),
        "np_worst_T": horizons[int(np.argmax(log_gap))], "np_worst_gap": float(10 ** log_gap.max()),
        "np_pred_beta_ratio": pred["beta_ratio"], "np_meas_beta_ratio": float(claims["beta_ratio"]),
        "np_meas_beta_low": float(claims["beta_ratio_interval"][0]),
        "np_pred_loss_ratio": pred_loss_ratio, "np_meas_loss_ratio": meas_loss_ratio,
        "np_meas_loss_low": float(claims["loss_ratio_interval"][0]),
        "np_meas_loss_high": float(claims["loss_ratio_interval"][1]),
        "np_meas_loss_trained": float(claims["trained_loss_ratio"]),
        "np_loss_factor": float(meas_loss_ratio / pred_loss_ratio),
        "np_loss_verdict": "inside" if loss_inside else "outside",
        "np_alt_loss_low": float(min(alt_ratios)), "np_alt_loss_high": float(max(alt_ratios)),
        "np_alpha_sentence": markdown(alpha_sentence(alpha_factor)),
        "np_rep_beta_factor": float(10 ** np.abs(replicate["log10_beta"] - pred["log10_beta"]).max()),
        "np_rep_alpha_factor": float(10 ** np.abs(replicate["log10_alpha0"] - pred["log10_alpha0"]).max()),
        "np_rep_loss_ratio": float(replicate["loss_ratio"]),
        "np_rep_inside": int(sum(r["beta_low"] <= 10 ** b <= r["beta_high"]
                                 for r, b in zip(rows, replicate["log10_beta"]))),
        "np_pred_final_beta": float(predicted_beta[-1]), "np_meas_final_beta": float(measured_beta[-1]),
        "np_meas_final_beta_high": float(rows[-1]["beta_high"]),
        "np_edges": markdown(edge_sentence or "No measured optimum lies at an end of the sampled range."),
        "np_final_excess": float(pred["final_loss"][-1]), "np_meas_final": float(rows[-1]["final_train_loss"]),
        "np_verdict": markdown(verdict(same_trend, int(np.sum(inside)), len(horizons),
                                       _inside(pred["beta_ratio"], claims["beta_ratio_interval"]), loss_inside,
                                       pred["beta_ratio"], float(claims["beta_ratio"])))}
