"""Analysis of the hypergradient precision measurement: differences, summary, verdicts, words.

From a result's arrays (:mod:`shortbias_lib.experiments.precision.experiment`): relative differences to
float64 (:func:`relative_differences`), their summary per horizon (:func:`summary`),
a verdict per horizon (:func:`verdicts`: ``"agree"``, ``"sensitivity"``,
``"roundoff"``), and the chapter's words and table (:func:`headline`,
:func:`conclusion`, :func:`table_rows`, :func:`markdown_table`). NumPy only.
"""

import numpy as np

from .variants import KINDS

# Verdicts (see :func:`verdicts`).
AGREE_TOL = 1e-2      # float32 within 1% of float64 on both components: precision does not matter
SPREAD_FACTOR = 3.0   # "within the spread": at most this times the largest perturbed difference

# The float32 computations on the reference minibatches: the same arithmetic up to roundoff.
FLOAT32_REFERENCE = ("float32", "float32 double backward", "float32 perturbed")
COMPONENTS = ("log effective learning rate", "log beta")


def _rows(arrays, kind):
    return np.flatnonzero(np.asarray(arrays["variant_kind"]) == kind)


def reference_rows(arrays):
    """For each variant, the row it is compared with: the unperturbed float64 run on the same
    minibatches, except the float64 runs on other minibatches, which are compared with the
    reference (their difference is minibatch noise)."""
    kinds = np.asarray(arrays["variant_kind"])
    batches = np.asarray(arrays["variant_batches"])
    base = {int(b): j for j, (k, b) in enumerate(zip(kinds, batches))
            if k in ("float64", "float64 other minibatches")}
    ref = base[0]
    return np.array([ref if kind == "float64 other minibatches" else base.get(int(b), ref)
                     for kind, b in zip(kinds, batches)])


def relative_differences(arrays, signed=False):
    """Relative differences of every variant to its reference (:func:`reference_rows`).

    Returns ``(grad (V, H, 2), meta_loss (V, H))`` with ``|x - x_ref| / |x_ref|``
    per component (``(x - x_ref) / |x_ref|`` if ``signed``); NaN where a run
    diverged; the reference's own row is 0.
    """
    ref = reference_rows(arrays)
    grad = np.asarray(arrays["grad"], dtype=np.float64)
    loss = np.asarray(arrays["meta_loss"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_grad = (grad - grad[ref]) / np.abs(grad[ref])
        rel_loss = (loss - loss[ref]) / np.abs(loss[ref])
    return (rel_grad, rel_loss) if signed else (np.abs(rel_grad), np.abs(rel_loss))


def nanmax(values, shape):
    """Max over the first axis ignoring NaN; NaN where there is nothing (no rows or all NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return np.full(shape, np.nan)
    out = np.where(np.isnan(values), -np.inf, values).max(axis=0)
    return np.where(np.isneginf(out), np.nan, out)


def _nanmin(values, shape):
    return -nanmax(-np.asarray(values, dtype=np.float64), shape)


def summary(arrays):
    """Per-horizon summary arrays (stored with the result; names start with ``summary_``).

    Relative differences are per component, to float64 on the same minibatches:

    - ``summary_float32`` (H, 2), ``summary_float32_loss`` (H,): float32 (fast path);
      ``summary_float32_double`` (H, 2): float32 by double backward; ``summary_perturbed32_max``
      (H, 2): float32 from perturbed starts; ``summary_float32_any`` (H, 2) and
      ``summary_float32_any_loss`` (H,): the largest over these float32 computations
      (:data:`FLOAT32_REFERENCE`); ``summary_float32_fewest`` (H,): the smallest (larger component);
    - ``summary_perturbed_max``/``_min`` (H, 2), ``summary_perturbed_loss_max`` (H,): float64 from
      perturbed starts; ``summary_perturbed_over`` (H,): how many of them differ by more than
      :data:`AGREE_TOL` (either component);
    - ``summary_small`` (H, 2) and ``summary_linearity`` (H, 2): the small perturbation's
      difference, and its ratio to the first perturbation's divided by the ratio of their
      sizes (1: the difference is proportional to the perturbation);
    - ``summary_batches_min``/``_max`` (H, 2): float64 on other minibatches vs the reference;
    - ``summary_scale`` (H, 2): each component's typical size, the root mean square of the
      float64 hypergradients over the minibatch sequences; ``summary_float32_across`` (H, 2):
      the smallest and largest error of float32 (fast path) over the sequences relative to that
      (the larger component; unlike the plain relative difference it does not blow up on a
      sequence where a component happens to be near zero); ``summary_batches_scaled`` (H, 2):
      the same for float64 on the other minibatches against the reference;
      ``summary_float32_signed`` (S, H, 2): float32's signed relative error on each sequence;
    - ``summary_rounded_loss`` (H,): the meta-objective of the float64 run with weights rounded
      to float32, relative to float64's; ``summary_lost`` (H,): the mean share of weight updates
      that run lost over the first T steps;
    - ``summary_verdict`` (H,) from :func:`verdicts`.
    """
    rel, rel_loss = relative_differences(arrays)
    signed, _ = relative_differences(arrays, signed=True)
    H = len(arrays["horizons"])
    rows = {kind: _rows(arrays, kind) for kind in KINDS}
    f32 = rows["float32"][0]
    f32_all = np.concatenate([rows[kind] for kind in FLOAT32_REFERENCE])
    out = {"summary_float32": rel[f32], "summary_float32_loss": rel_loss[f32],
           "summary_float32_double": nanmax(rel[rows["float32 double backward"]], (H, 2)),
           "summary_perturbed32_max": nanmax(rel[rows["float32 perturbed"]], (H, 2)),
           "summary_float32_any": nanmax(rel[f32_all], (H, 2)),
           "summary_float32_any_loss": nanmax(rel_loss[f32_all], (H,)),
           "summary_float32_fewest": _nanmin(rel[f32_all].max(axis=-1), (H,)),
           "summary_perturbed_max": nanmax(rel[rows["float64 perturbed"]], (H, 2)),
           "summary_perturbed_min": _nanmin(rel[rows["float64 perturbed"]], (H, 2)),
           "summary_perturbed_loss_max": nanmax(rel_loss[rows["float64 perturbed"]], (H,)),
           "summary_perturbed_over": np.sum(rel[rows["float64 perturbed"]].max(axis=-1) > AGREE_TOL, axis=0),
           "summary_batches_max": nanmax(rel[rows["float64 other minibatches"]], (H, 2)),
           "summary_batches_min": _nanmin(rel[rows["float64 other minibatches"]], (H, 2))}
    small = rows["float64 small perturbation"]
    out["summary_small"] = out["summary_linearity"] = np.full((H, 2), np.nan)
    if len(small):
        direction = np.asarray(arrays["variant_direction"])
        first = [j for j in rows["float64 perturbed"] if direction[j] == direction[small[0]]]
        out["summary_small"] = rel[small[0]]
        if first:
            eps = np.asarray(arrays["variant_eps"], dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out["summary_linearity"] = (rel[small[0]] / rel[first[0]]) / (eps[small[0]] / eps[first[0]])
    sequences = np.concatenate([[f32], rows["float32 other minibatches"]])
    out["summary_float32_signed"] = signed[sequences]
    grad = np.asarray(arrays["grad"], dtype=np.float64)
    ref64 = reference_rows(arrays)[sequences]
    out["summary_scale"] = np.sqrt(np.nanmean(grad[ref64] ** 2, axis=0))          # (H, 2)
    other = rows["float64 other minibatches"]
    with np.errstate(divide="ignore", invalid="ignore"):
        size = (np.abs(grad[sequences] - grad[ref64]) / out["summary_scale"]).max(axis=-1)   # (S, H)
        noise = (np.abs(grad[other] - grad[rows["float64"][0]]) / out["summary_scale"]).max(axis=-1)  # (R, H)
    out["summary_float32_across"] = np.stack([_nanmin(size, (H,)), nanmax(size, (H,))], axis=-1)
    out["summary_batches_scaled"] = np.stack([_nanmin(noise, (H,)), nanmax(noise, (H,))], axis=-1)
    loss = np.asarray(arrays["meta_loss"], dtype=np.float64)
    ref, rounded = loss[rows["float64"][0]], np.asarray(arrays["rounded_objective"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["summary_rounded_loss"] = np.abs(rounded - ref) / np.abs(ref)
    lost = np.asarray(arrays["rounded_lost"], dtype=np.float64)
    out["summary_lost"] = np.array([np.nanmean(lost[:int(T)]) if np.any(np.isfinite(lost[:int(T)]))
                                    else np.nan for T in arrays["horizons"]])
    out["summary_verdict"] = np.array(verdicts(dict(arrays, **out)))
    return out


def verdicts(arrays, agree_tol=AGREE_TOL, spread_factor=SPREAD_FACTOR):
    """Per horizon, what the float32/float64 difference of the hypergradient is, judged on the
    float32 computation farthest from float64 (:data:`FLOAT32_REFERENCE`):

    - ``"agree"``: every float32 computation is within ``agree_tol`` (relative) of float64
      on both components: precision does not matter;
    - ``"sensitivity"``: one is not, but it is within ``spread_factor`` times the largest
      difference that a roundoff-sized perturbation of the start makes in float64: the
      hypergradient itself is that sensitive, and float64 would not make it more meaningful
      (roundoff is not the issue, sensitivity is);
    - ``"roundoff"``: a float32 computation differs by more than the perturbations of
      float64 explain: float64 is stable there and float32 roundoff is the issue;
    - ``"diverged"``: the reference or a float32 run diverged.

    ``arrays`` is a result (its ``summary_*`` arrays are used when present).
    """
    if "summary_float32_any" in arrays:
        f32s, spreads = arrays["summary_float32_any"], arrays["summary_perturbed_max"]
    else:
        rel, _ = relative_differences(arrays)
        rows = np.concatenate([_rows(arrays, kind) for kind in FLOAT32_REFERENCE])
        f32s = nanmax(np.where(np.isnan(rel[rows]), np.inf, rel[rows]), (len(arrays["horizons"]), 2))
        spreads = nanmax(rel[_rows(arrays, "float64 perturbed")], f32s.shape)
    out = []
    for f32, spread in zip(np.asarray(f32s), np.asarray(spreads)):
        if not np.all(np.isfinite(f32)):
            out.append("diverged")
        elif np.all(f32 <= agree_tol):
            out.append("agree")
        elif np.all(np.isfinite(spread)) and np.all(f32 <= spread_factor * spread):
            out.append("sensitivity")
        else:
            out.append("roundoff")
    return out


def perturbation_size(arrays):
    """The relative perturbation of the perturbed runs of a result (NaN if none)."""
    rows = _rows(arrays, "float64 perturbed")
    return float(np.asarray(arrays["variant_eps"])[rows[0]]) if len(rows) else float("nan")


def _list(values):
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _groups(horizons, verdict):
    """Runs of consecutive horizons with the same verdict: [(verdict, [T, ...], [k, ...]), ...]."""
    groups = []
    for k, (T, v) in enumerate(zip(horizons, verdict)):
        if groups and groups[-1][0] == v:
            groups[-1][1].append(T)
            groups[-1][2].append(k)
        else:
            groups.append((v, [T], [k]))
    return groups


def _percent(x):
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1e}"


def headline(arrays):
    """One sentence: what the float32/float64 disagreement is, by horizon."""
    horizons = [int(h) for h in arrays["horizons"]]
    verdict = [str(v) for v in arrays["summary_verdict"]]
    at = {v: [T for T, w in zip(horizons, verdict) if w == v] for v in set(verdict)}
    if set(verdict) == {"agree"}:
        return "Float32 hypergradients are as good as float64's at every horizon measured here."
    parts = []
    if "agree" in at:
        parts.append(f"float32 is as good as float64 at T = {_list(at['agree'])}")
    if "roundoff" in at:
        parts.append(f"at T = {_list(at['roundoff'])} the float64 hypergradient hardly moves when its start "
                     "is perturbed, but float32 computations can be far from it: there float32 roundoff is "
                     "the issue")
    if "sensitivity" in at:
        parts.append(f"at T = {_list(at['sensitivity'])} roundoff is not the issue but sensitivity is: a "
                     "roundoff-sized perturbation of the start can change the float64 hypergradient as "
                     "much as float32 does")
    if "diverged" in at:
        parts.append(f"a lookahead diverged at T = {_list(at['diverged'])}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def conclusion(arrays, smd_horizons=(100, 1000, 5000)):
    """A few sentences on what a result's numbers say, chosen from its verdicts (in order of
    the horizon), and what they imply for float32 SMD at ``smd_horizons`` (the offline
    archive's SMD horizons)."""
    horizons = [int(h) for h in arrays["horizons"]]
    verdict = [str(v) for v in arrays["summary_verdict"]]
    anyf = np.nanmax(np.asarray(arrays["summary_float32_any"]), axis=1)
    fewest = np.asarray(arrays["summary_float32_fewest"])
    any_loss = np.asarray(arrays["summary_float32_any_loss"])
    across = np.asarray(arrays["summary_float32_across"])
    spread = np.nanmax(np.asarray(arrays["summary_perturbed_max"]), axis=1)
    over = np.asarray(arrays["summary_perturbed_over"])
    linear = np.asarray(arrays["summary_linearity"])
    batch_low, batch_high = np.asarray(arrays["summary_batches_scaled"]).T
    n_pert = len(_rows(arrays, "float64 perturbed"))
    n_f32 = sum(len(_rows(arrays, kind)) for kind in FLOAT32_REFERENCE)
    n_seq = np.asarray(arrays["summary_float32_signed"]).shape[0]
    eps = perturbation_size(arrays)

    parts = []
    for kind, Ts, k in _groups(horizons, verdict):
        where = f"At T = {_list(Ts)}"
        if kind == "agree":
            parts.append(f"{where} all {n_f32} float32 computations agree with float64 to "
                         f"{anyf[k].max():.1e} (relative): precision does not matter there.")
        elif kind == "roundoff":
            smooth = bool(np.all(np.isfinite(linear[k])) and np.all(np.abs(np.log10(linear[k])) < np.log10(3)))
            parts.append(f"{where} perturbing the starting weights by {eps:.0e} (relative) changes the "
                         f"float64 hypergradient by at most {spread[k].max():.1e}"
                         + (", in proportion to the perturbation" if smooth else "")
                         + f", but the {n_f32} float32 computations, which differ only in roundoff, differ "
                         f"from float64 by {_percent(fewest[k].min())} to {_percent(anyf[k].max())} (the "
                         f"meta-objective by up to {_percent(any_loss[k].max())}): float64 is stable there, "
                         "and float32 roundoff, made at every step, sometimes sends the training on "
                         "another path that a perturbation of the start alone does not.")
        elif kind == "sensitivity":
            parts.append(f"{where} perturbing the starting weights by {eps:.0e} (relative) changes the "
                         f"float64 hypergradient by up to {_percent(spread[k].max())} ({int(over[k].max())} "
                         f"of {n_pert} perturbations by more than {AGREE_TOL:.0%}), and the float32 "
                         f"computations differ from float64 by {_percent(fewest[k].min())} to "
                         f"{_percent(anyf[k].max())}: roundoff is not the issue, sensitivity is, and a "
                         "single-trajectory hypergradient there is a noisy estimate in any precision.")
        else:
            parts.append(f"{where} a lookahead diverged, so nothing is compared there.")
    if n_seq >= 2:
        wide = [T for T in horizons if np.isfinite(across[horizons.index(T), 1])
                and across[horizons.index(T), 1] > 10 * max(across[horizons.index(T), 0], 1e-12)
                and across[horizons.index(T), 1] > AGREE_TOL]
        if wide:
            k = [horizons.index(T) for T in wide]
            parts.append(f"On the {n_seq} minibatch sequences, float32's error at T = {_list(wide)} ranges from "
                         f"{_percent(across[k, 0].min())} to {_percent(across[k, 1].max())} of the "
                         "hypergradient's typical size: it is erratic, not a steady bias.")

    # What it implies for the offline experiment's float32 SMD, horizon by horizon.
    measured = [T for T in smd_horizons if T in horizons]
    if not measured:
        parts.append(f"This run measures none of the offline archive's SMD horizons (T = {_list(smd_horizons)}).")
        return " ".join(parts)
    clauses = []
    for kind, Ts, _ in _groups(measured, [verdict[horizons.index(T)] for T in measured]):
        k = [horizons.index(T) for T in Ts]
        noise = (f"changing the minibatches changes the float64 hypergradient by {_percent(batch_low[k].min())} "
                 f"to {_percent(batch_high[k].max())} of its typical size"
                 if np.all(np.isfinite(batch_high[k])) else "")
        if kind == "agree":
            clauses.append(f"at T = {_list(Ts)} it gets float64's hypergradients")
        elif kind == "roundoff":
            clauses.append(f"at T = {_list(Ts)} whether its hypergradients are right or off by up to "
                           f"{_percent(anyf[k].max())} depends on roundoff, where float64's are stable, so "
                           "float64 would help" + (f" ({noise})" if noise else ""))
        elif kind == "sensitivity":
            clauses.append(f"at T = {_list(Ts)} float64 would not make them more meaningful: a roundoff-sized "
                           f"change of the start can move even float64's by {_percent(spread[k].max())}"
                           + (f" and {noise}" if noise else "")
                           + ", so SMD follows a noisy direction there in any precision")
        else:
            clauses.append(f"at T = {_list(Ts)} the lookahead diverged")
    parts.append("For the offline archive's float32 SMD: " + "; ".join(clauses) + ".")
    return " ".join(parts)


def table_rows(arrays):
    """Per-horizon rows for the chapter's table (plain floats and strings; the larger of the two
    components' relative differences)."""
    rows = []
    for k, T in enumerate(np.asarray(arrays["horizons"])):
        def big(name):
            return float(np.max(np.asarray(arrays[name][k], dtype=float)))
        rows.append({"horizon": int(T), "float32": big("summary_float32"),
                     "float32_double": big("summary_float32_double"),
                     "float32_perturbed": big("summary_perturbed32_max"),
                     "float32_any": big("summary_float32_any"),
                     "float32_loss": float(arrays["summary_float32_loss"][k]),
                     "float32_any_loss": float(arrays["summary_float32_any_loss"][k]),
                     "float32_low": float(arrays["summary_float32_across"][k, 0]),
                     "float32_high": float(arrays["summary_float32_across"][k, 1]),
                     "perturbed": big("summary_perturbed_max"),
                     "perturbed_loss": float(arrays["summary_perturbed_loss_max"][k]),
                     "perturbed_over": int(arrays["summary_perturbed_over"][k]),
                     "linearity": big("summary_linearity"),
                     "batches_low": float(arrays["summary_batches_scaled"][k, 0]),
                     "batches_high": float(arrays["summary_batches_scaled"][k, 1]),
                     "rounded_loss": float(arrays["summary_rounded_loss"][k]),
                     "lost": float(arrays["summary_lost"][k]),
                     "verdict": str(arrays["summary_verdict"][k])})
    return rows


def markdown_table(arrays):
    """The per-horizon table in Markdown: relative differences to float64 (the larger of the
    two components), the meta-objective's, and the verdict."""
    def num(x):
        return "-" if not np.isfinite(x) else f"{x:.1e}"

    n_pert = len(_rows(arrays, "float64 perturbed"))
    lines = ["| horizon $T$ | float32 | float32, double backward | float32, start perturbed "
             f"| float64, start perturbed (runs over {AGREE_TOL:.0%}) | meta-objective: float32 (worst) "
             "| meta-objective: float64 with weights rounded to float32 "
             "| float32 on each minibatch sequence (min - max)* | float64 on other minibatches (min - max)* "
             "| verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table_rows(arrays):
        lines.append(f"| {r['horizon']} | {num(r['float32'])} | {num(r['float32_double'])} "
                     f"| {num(r['float32_perturbed'])} | {num(r['perturbed'])} ({r['perturbed_over']} of {n_pert}) "
                     f"| {num(r['float32_any_loss'])} | {num(r['rounded_loss'])} "
                     f"| {num(r['float32_low'])} - {num(r['float32_high'])} "
                     f"| {num(r['batches_low'])} - {num(r['batches_high'])} | {r['verdict']} |")
    lines.append("")
    lines.append("\\* relative to each component's typical size at that horizon (the root mean square "
                 "of the float64 hypergradients over the minibatch sequences).")
    return "\n".join(lines)


__all__ = ["AGREE_TOL", "SPREAD_FACTOR", "FLOAT32_REFERENCE", "COMPONENTS", "reference_rows",
           "relative_differences", "summary", "verdicts", "headline", "conclusion", "table_rows",
           "markdown_table"]
