"""SymPy derivations of Theorems 1-4 and Appendix A, from the update equations.

Each function derives a result from Eqs. (1)-(3) alone and returns it next to
the paper's stated form (re-typed from the PDF, since the OCR is garbled), so
the book can show ``derived - paper == 0`` and say where the print differs.

Random quantities are written as mean plus a zero-mean fluctuation,
``theta = m_theta + d_theta``, ``v = m_v + d_v``, and the sampled minimum as
``c = sigma * xi`` with ``xi ~ N(0, 1)`` independent of the past; the
expectation operator :func:`expect` then only needs the second moments
``E[d_theta^2] = V_theta``, ``E[d_v^2] = V_v``, ``E[d_theta d_v] = S``,
``E[xi^2] = 1`` (first moments of fluctuations vanish, xi is independent).
"""

from functools import lru_cache

import sympy as sp

alpha, mu, h = sp.symbols("alpha mu h", positive=True)
sigma = sp.Symbol("sigma", nonnegative=True)
m_theta, m_v = sp.symbols("m_theta m_v", real=True)              # E[theta], E[v]
V_theta, V_v = sp.symbols("V_theta V_v", nonnegative=True)       # V[theta], V[v]
S = sp.Symbol("Sigma", real=True)                                # Cov(theta, v)
d_theta, d_v, xi = sp.symbols("delta_theta delta_v xi", real=True)
A_theta, A_v = sp.symbols("A_theta A_v", nonnegative=True)       # A(.) = E[.]^2 + V[.]
B = sp.Symbol("B", real=True)                                    # E[theta v]

_SECOND = {(2, 0, 0): V_theta, (0, 2, 0): V_v, (1, 1, 0): S, (0, 0, 2): 1}

THEOREM1_TEX = {"E[v']": r"\mathbb{E}[v']", "E[theta']": r"\mathbb{E}[\theta']", "V[v']": r"\mathbb{V}[v']",
                "V[theta']": r"\mathbb{V}[\theta']", "Cov(theta', v')": r"\Sigma_{\theta',v'}"}
"""The LaTeX names of :func:`theorem1`'s keys."""


def equation(lhs, expr):
    """The LaTeX of ``lhs = expr``, ``lhs`` already LaTeX and ``expr`` a SymPy expression."""
    return f"{lhs} = {sp.latex(expr)}"


def show(lhs, expr):
    """Display ``lhs = expr`` as typeset math in a notebook (see :func:`equation`)."""
    from IPython.display import Math, display

    display(Math(equation(lhs, expr)))


def expect(expr, fluctuations=(d_theta, d_v, xi), second=None):
    """E[expr] for a polynomial of degree <= 2 in the fluctuations ``d_theta, d_v, xi``.

    ``fluctuations`` and ``second`` (their second moments by exponent tuple)
    default to one coordinate's; :func:`theorem2_multivariate` passes those of
    coordinate ``i``.
    """
    second = _SECOND if second is None else second
    poly = sp.Poly(sp.expand(expr), *fluctuations)
    total = 0
    for powers, coeff in poly.terms():
        if sum(powers) == 0:
            total += coeff
        elif sum(powers) == 2:
            total += coeff * second.get(powers, 0)  # xi is independent of d_theta, d_v
        elif sum(powers) > 2:
            raise ValueError("expect handles polynomials of degree <= 2 in the fluctuations")
    return sp.expand(total)


def variance(x):
    return sp.expand(expect(x ** 2) - expect(x) ** 2)


def covariance(x, y):
    return sp.expand(expect(x * y) - expect(x) * expect(y))


def sgd_momentum_step():
    """Eqs. (1)-(3) as random expressions: ``(theta', v')``.

    The stochastic gradient is ``h (theta - c)`` with ``c = sigma xi`` (Eq. 3).
    """
    theta = m_theta + d_theta
    v = m_v + d_v
    c = sigma * xi
    v_new = mu * v - alpha * h * (theta - c)
    theta_new = theta + v_new
    return theta_new, v_new


def _zero(expr):
    return sp.simplify(sp.expand(expr)) == 0


@lru_cache(maxsize=None)
def theorem1():
    """Theorem 1: derived moment updates vs the paper's. Returns name -> (derived, paper, equal)."""
    theta_new, v_new = sgd_momentum_step()
    derived = {
        "E[v']": expect(v_new),
        "E[theta']": expect(theta_new),
        "V[v']": variance(v_new),
        "V[theta']": variance(theta_new),
        "Cov(theta', v')": covariance(theta_new, v_new),
    }
    Ev = mu * m_v - alpha * h * m_theta
    Vv = mu ** 2 * V_v + (alpha * h) ** 2 * V_theta - 2 * mu * alpha * h * S + (alpha * h * sigma) ** 2
    paper = {
        "E[v']": Ev,
        "E[theta']": m_theta + Ev,
        "V[v']": Vv,
        "V[theta']": (1 - 2 * alpha * h) * V_theta + Vv + 2 * mu * S,
        "Cov(theta', v')": mu * S - alpha * h * V_theta + Vv,
    }
    return {k: (derived[k], paper[k], _zero(derived[k] - paper[k])) for k in derived}


@lru_cache(maxsize=None)
def appendix_a1_theta_update():
    """Appendix A.1's expansion of theta': derived vs printed ``(1 - alpha h) theta + mu v + h sigma xi``.

    The print drops the factor alpha on the noise term (and its sign, which
    does not matter for symmetric xi); the derived form has ``+ alpha h sigma xi``
    with ``c = sigma xi``. Returns (derived, printed, equal, equal_with_alpha).
    """
    theta_new, _ = sgd_momentum_step()
    theta = m_theta + d_theta
    v = m_v + d_v
    printed = (1 - alpha * h) * theta + mu * v + h * sigma * xi
    corrected = (1 - alpha * h) * theta + mu * v + alpha * h * sigma * xi
    return (sp.expand(theta_new), printed, _zero(theta_new - printed),
            _zero(theta_new - corrected))


def _substitute_A(expr):
    """Rewrite in terms of A(theta), A(v), E[theta v] where possible."""
    return sp.simplify(expr.subs({V_theta: A_theta - m_theta ** 2, V_v: A_v - m_v ** 2,
                                  S: B - m_theta * m_v}))


@lru_cache(maxsize=None)
def one_step_loss():
    """Eq. (15): the expected excess loss after one step, univariate, derived vs paper."""
    theta_new, _ = sgd_momentum_step()
    derived = _substitute_A(sp.Rational(1, 2) * h * expect(theta_new ** 2))
    paper = sp.Rational(1, 2) * h * ((1 - alpha * h) ** 2 * A_theta + mu ** 2 * A_v
                                     + 2 * mu * (1 - alpha * h) * B + (alpha * h * sigma) ** 2)
    return derived, paper, _zero(derived - paper)


@lru_cache(maxsize=None)
def theorem2_univariate():
    """Appendix A.2.1: solve dL/dalpha = dL/dmu = 0 for Eq. (15). Returns a dict."""
    loss, _, _ = one_step_loss()
    sol = sp.solve([sp.diff(loss, alpha), sp.diff(loss, mu)], [alpha, mu], dict=True)
    if len(sol) != 1:
        raise RuntimeError(f"expected one stationary point, got {sol}")
    a_star, m_star = sp.simplify(sol[0][alpha]), sp.simplify(sol[0][mu])
    paper_alpha = (A_theta * A_v - B ** 2) / (h * (A_v * (A_theta + sigma ** 2) - B ** 2))
    paper_mu = -(1 - paper_alpha * h) * B / A_v  # A.2.1; the main-text OCR loses the minus sign
    hess = sp.hessian(loss, (alpha, mu))
    return {
        "alpha": (a_star, paper_alpha, _zero(a_star - paper_alpha)),
        "mu": (m_star, paper_mu, _zero(m_star - paper_mu)),
        "hessian_det": sp.factor(sp.simplify(hess.det())),
        "hessian_trace": sp.simplify(hess.trace()),
        **hessian_definiteness(hess),
    }


def hessian_definiteness(hess):
    """Prove Eq. (15)'s Hessian in ``(alpha, mu)`` positive definite, so the stationary point is the minimum.

    Cauchy-Schwarz gives ``E[theta v]^2 <= A(theta) A(v)``: write
    ``B^2 = A(theta) A(v) - D`` with ``D >= 0``. With ``sigma > 0`` and
    ``A(v) > 0`` (any step after the first) SymPy must then find the leading
    minor and the determinant positive from the symbols' signs alone.
    Returns the rewritten minors and ``positive_definite`` (a bool).
    """
    D = sp.Symbol("D", nonnegative=True)
    av, sg = sp.Symbol("A_v", positive=True), sp.Symbol("sigma", positive=True)
    sub = {A_v: av, sigma: sg}
    det = sp.expand(hess.det().subs(B ** 2, A_theta * A_v - D).subs(sub))
    det = sp.expand(det.subs(B ** 2, A_theta * av - D))
    minor = sp.expand(hess[0, 0].subs(sub))
    return {"hessian_minor": minor, "hessian_det_cs": sp.factor(det),
            "positive_definite": bool(minor.is_positive) and bool(sp.factor(det).is_positive)}


def multivariate_symbols(d):
    """Per-dimension symbols ``h_i, sigma_i, A(theta_i), A(v_i), E[theta_i v_i]`` for ``d`` dims."""
    hs = sp.symbols(f"h_1:{d + 1}", positive=True)
    sg = sp.symbols(f"sigma_1:{d + 1}", nonnegative=True)
    at = sp.symbols(f"At_1:{d + 1}", nonnegative=True)
    av = sp.symbols(f"Av_1:{d + 1}", nonnegative=True)
    bb = sp.symbols(f"B_1:{d + 1}", real=True)
    return hs, sg, at, av, bb


def theorem2_paper_form(hs, sg, at, av, bb):
    """Theorem 2 as printed (A.2.2), as a function of per-dimension lists: ``(alpha*, mu*)``.

    ``alpha* = sum_i [h_i^2 A(theta_i) P - B1 h_i^2 E_i] / sum_i [h_i^3 (A(theta_i) + sigma_i^2) P - B2 h_i^2 E_i]``
    with ``P = sum_j h_j A(v_j)``, ``B1 = sum_j h_j E_j``, ``B2 = sum_j h_j^2 E_j``,
    ``E_i = E[theta_i v_i]``; ``mu* = -sum_i h_i (1 - alpha* h_i) E_i / P``.
    """
    P = sum(hj * a for hj, a in zip(hs, av))
    B1 = sum(hj * b for hj, b in zip(hs, bb))
    B2 = sum(hj ** 2 * b for hj, b in zip(hs, bb))
    num = sum(hi ** 2 * a * P - B1 * hi ** 2 * b for hi, a, b in zip(hs, at, bb))
    den = sum(hi ** 3 * (a + s ** 2) * P - B2 * hi ** 2 * b for hi, a, s, b in zip(hs, at, sg, bb))
    a_star = num / den
    m_star = -sum(hi * (1 - a_star * hi) * b for hi, b in zip(hs, bb)) / P
    return a_star, m_star


def multivariate_one_step_loss(d):
    """The summed one-step excess loss in ``d`` dimensions, derived from Eqs. (1)-(3).

    Coordinate ``i`` gets its own mean, fluctuations and noise; the update
    equations of :func:`sgd_momentum_step` are rewritten in them (shared
    ``alpha`` and ``mu``), ``1/2 h_i E[theta_i'^2]`` is taken with that
    coordinate's second moments, and the moments are rewritten as
    ``A(theta_i)``, ``A(v_i)``, ``E[theta_i v_i]``. Returns ``(loss, symbols)``.
    """
    hs, sg, at, av, bb = multivariate_symbols(d)
    theta_new, _ = sgd_momentum_step()
    loss = 0
    for i in range(d):
        mt, mv = sp.symbols(f"m_theta{i + 1} m_v{i + 1}", real=True)
        vt, vv = sp.symbols(f"V_theta{i + 1} V_v{i + 1}", nonnegative=True)
        cov = sp.Symbol(f"Sigma{i + 1}", real=True)
        dt, dv, xi_i = sp.symbols(f"delta_theta{i + 1} delta_v{i + 1} xi{i + 1}", real=True)
        local = theta_new.xreplace({m_theta: mt, m_v: mv, d_theta: dt, d_v: dv, xi: xi_i,
                                    h: hs[i], sigma: sg[i]})
        second = {(2, 0, 0): vt, (0, 2, 0): vv, (1, 1, 0): cov, (0, 0, 2): 1}
        term = sp.Rational(1, 2) * hs[i] * expect(local ** 2, (dt, dv, xi_i), second)
        loss += sp.expand(term.subs({vt: at[i] - mt ** 2, vv: av[i] - mv ** 2, cov: bb[i] - mt * mv}))
    return sp.expand(loss), (hs, sg, at, av, bb)


@lru_cache(maxsize=None)
def theorem2_multivariate(d=3):
    """Theorem 2 in ``d`` dimensions: solve the stationarity equations of the derived loss.

    The loss (:func:`multivariate_one_step_loss`, from the update equations)
    is quadratic in (alpha, mu) with coefficients that are sums over
    dimensions, so agreement for a generic ``d`` (symbols, not numbers) checks
    the printed formula's structure. Returns a dict like
    :func:`theorem2_univariate`, with ``eq15_sum``: whether the derived loss
    equals Eq. (15) summed over coordinates.
    """
    loss, (hs, sg, at, av, bb) = multivariate_one_step_loss(d)
    typed = sum(sp.Rational(1, 2) * hi * ((1 - alpha * hi) ** 2 * a + mu ** 2 * v
                                          + 2 * mu * (1 - alpha * hi) * b + (alpha * hi * s) ** 2)
                for hi, s, a, v, b in zip(hs, sg, at, av, bb))
    sol = sp.solve([sp.diff(loss, alpha), sp.diff(loss, mu)], [alpha, mu], dict=True)
    if len(sol) != 1:
        raise RuntimeError(f"expected one stationary point, got {sol}")
    a_star, m_star = sol[0][alpha], sol[0][mu]
    pa, pm = theorem2_paper_form(hs, sg, at, av, bb)
    return {
        "alpha": (a_star, pa, _zero(sp.together(a_star - pa))),
        "mu": (m_star, pm, _zero(sp.together(m_star - pm))),
        "eq15_sum": _zero(loss - typed),
        "loss": loss,
        "symbols": (hs, sg, at, av, bb),
    }


@lru_cache(maxsize=None)
def theorem3():
    """Theorem 3 / Eq. (7): SGD without momentum, univariate, greedy step and its A'.

    Returns the A recursion, alpha*, the minimal A' and checks against the paper's forms.
    """
    A = sp.Symbol("A", positive=True)
    s2 = sp.Symbol("s2", positive=True)  # sigma^2
    theta_new = (m_theta + d_theta) - alpha * h * ((m_theta + d_theta) - sigma * xi)
    second = _substitute_A(expect(theta_new ** 2)).subs({A_theta: A, sigma: sp.sqrt(s2)})
    recursion_paper = (1 - alpha * h) ** 2 * A + (alpha * h) ** 2 * s2
    a_star = sp.solve(sp.diff(second, alpha), alpha)
    if len(a_star) != 1:
        raise RuntimeError(f"expected one stationary point, got {a_star}")
    a_star = sp.simplify(a_star[0])
    a_min = sp.simplify(second.subs(alpha, a_star))
    return {
        "recursion": (second, recursion_paper, _zero(second - recursion_paper)),
        "alpha": (a_star, A / (h * (A + s2)), _zero(a_star - A / (h * (A + s2)))),
        "A_min": (a_min, A * s2 / (A + s2), _zero(a_min - A * s2 / (A + s2))),
        "second_derivative": sp.simplify(sp.diff(second, alpha, 2)),
        "symbols": (A, s2),
    }


@lru_cache(maxsize=None)
def theorem4():
    """Theorem 4 / Eq. (16): after k greedy steps ``A_T = A sigma^2 / (k A + sigma^2)``.

    Proved by induction with SymPy: the base case is Theorem 3's A_min, the
    step composes one more greedy step. Also returns ``dA_T/dA_{T-k} > 0``
    (why greedy is optimal: a smaller A at any step gives a smaller final A).
    """
    A, s2 = theorem3()["symbols"]
    k = sp.Symbol("k", positive=True, integer=True)
    closed = A * s2 / (k * A + s2)
    one_step = lambda a: a * s2 / (a + s2)  # noqa: E731  (Theorem 3's A_min)
    base = _zero(closed.subs(k, 1) - one_step(A))
    # induction: k greedy steps from one_step(A) equal k+1 steps from A
    step = _zero(closed.subs(A, one_step(A)) - closed.subs(k, k + 1))
    deriv = sp.factor(sp.diff(closed, A))
    h_ = h
    loss = sp.Rational(1, 2) * h_ * (closed + s2)
    return {"closed_form": closed, "base": base, "induction": step,
            "dA_T_dA": deriv, "positive": bool(deriv.is_positive), "L_min": loss,
            "symbols": (A, s2, k)}


@lru_cache(maxsize=None)
def theorem3_two_step():
    """Theorem 3 by dynamic programming over two steps, without assuming greediness.

    ``A_1 = (1 - a_0 h)^2 A + a_0^2 h^2 sigma^2``, then the best last step
    gives ``A_2 = A_1 sigma^2 / (A_1 + sigma^2)`` (Theorem 3's ``A_min``).
    Solving ``d A_2 / d a_0 = 0`` for the *first* rate gives the greedy rate
    of that step: minimising the final loss jointly agrees with the greedy choice.
    Returns ``(solutions, greedy, equal)``.
    """
    t3 = theorem3()
    A, s2 = t3["symbols"]
    a0 = sp.Symbol("alpha_0", positive=True)
    A1 = (1 - a0 * h) ** 2 * A + (a0 * h) ** 2 * s2
    A2 = A1 * s2 / (A1 + s2)
    sols = [sp.simplify(s) for s in sp.solve(sp.numer(sp.together(sp.diff(A2, a0))), a0)]
    greedy = A / (h * (A + s2))
    return sols, greedy, len(sols) == 1 and _zero(sols[0] - greedy)


@lru_cache(maxsize=None)
def theorem3_every_horizon():
    """Theorem 3 for every horizon ``T``, as one proof by induction (symbolic ``T``).

    Claim: for every ``T >= 1`` and ``A >= 0``, the smallest ``A^{(T)}`` that
    ``T`` steps of SGD without momentum can reach from ``A^{(0)} = A`` is
    ``f_T(A) = A sigma^2 / (T A + sigma^2)``, and the greedy rates (Eq. 7) reach it.
    SymPy works with ``K = T - 1 >= 0``.

    * Base, ``T = 1``: ``A'(alpha)`` is a convex quadratic (second derivative
      ``2 h^2 (A + sigma^2) > 0``), minimised by Eq. (7) at ``f_1(A)``.
    * Step: by the induction hypothesis the last ``T - 1`` steps can at best
      reach ``f_{T-1}(A^{(1)})`` (dynamic programming), and
      ``f_{T-1}`` increases with its argument (positive derivative for every
      ``T``), so the first rate must minimise ``A^{(1)}``: Eq. (7) again,
      giving ``f_{T-1}(f_1(A))``, which equals ``f_T(A)`` identically in ``T``.

    Returns each step's expression and the bools SymPy established.
    """
    t3 = theorem3()
    A, s2 = t3["symbols"]
    K = sp.Symbol("K", nonnegative=True, integer=True)  # K = T - 1 >= 0 remaining steps
    f = lambda k, a: a * s2 / (k * a + s2)  # noqa: E731
    base = _zero(t3["A_min"][0] - f(1, A))
    curvature = t3["second_derivative"]
    monotone = sp.factor(sp.diff(f(K, A), A))
    step = sp.simplify(f(K, f(1, A)) - f(K + 1, A))
    return {
        "claim": f(K + 1, A), "base": base and t3["alpha"][2],
        "convex": bool(curvature.is_positive), "second_derivative": curvature,
        "monotone_derivative": monotone, "monotone": bool(monotone.is_positive),
        "composition": f(K, f(1, A)), "step": step == 0,
        "proved": base and t3["alpha"][2] and bool(curvature.is_positive)
        and bool(monotone.is_positive) and step == 0,
        "symbols": (A, s2, K),
    }


@lru_cache(maxsize=None)
def noise_floor():
    """The stationary expected excess loss of constant-step SGD in one dimension (a noise floor).

    With a fixed ``(alpha, mu)`` the second moments ``(A(theta), A(v), E[theta v])``
    follow a linear recursion (derived here from Eqs. (1)-(3), as Eq. 15's);
    its fixed point, where one step leaves them unchanged, is the floor the
    loss settles at. Returns the floors without and with momentum (excess
    loss ``1/2 h A(theta)``), the stationary second moments, and whether the
    momentum floor reduces to the plain one at ``mu = 0``.
    """
    theta_new, v_new = sgd_momentum_step()
    a_t, a_v, b = sp.symbols("A_theta^* A_v^* B^*", real=True)
    to_a = {V_theta: A_theta - m_theta ** 2, V_v: A_v - m_v ** 2, S: B - m_theta * m_v}
    step = [sp.expand(expect(x).subs(to_a)) for x in (theta_new ** 2, v_new ** 2, theta_new * v_new)]
    fixed = [e.subs({A_theta: a_t, A_v: a_v, B: b}) for e in step]
    sol = sp.solve([fixed[0] - a_t, fixed[1] - a_v, fixed[2] - b], [a_t, a_v, b], dict=True)
    if len(sol) != 1:
        raise RuntimeError(f"expected one fixed point, got {sol}")
    floor_mu = sp.factor(sp.simplify(sp.Rational(1, 2) * h * sol[0][a_t]))
    floor_plain = sp.factor(floor_mu.subs(mu, 0))
    expected_plain = alpha * h ** 2 * sigma ** 2 / (2 * (2 - alpha * h))
    return {"plain": floor_plain, "momentum": floor_mu,
            "moments": {k: sp.factor(v) for k, v in sol[0].items()},
            "plain_closed_form": _zero(floor_plain - expected_plain)}
