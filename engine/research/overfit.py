"""Overfitting measures of a parameter search.

Deflated Sharpe ratio (DSR): Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe
Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality", *Journal of
Portfolio Management* 40 (5), 94-107. Probability of backtest overfitting (PBO) by
combinatorially symmetric cross-validation (CSCV): Bailey, D. H., Borwein, J., López de Prado, M.
and Zhu, Q. J. (2017), "The Probability of Backtest Overfitting", *Journal of Computational
Finance* 20 (4), 39-69.

All Sharpe ratios here are per period (per trading day: mean / standard deviation of the daily
P&L, NOT annualised), as the formulas require.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def sharpe(x: np.ndarray) -> float:
    """Per-period Sharpe ratio mean/std (ddof=1) of ``x`` (1-D); 0 when the std is 0 or n < 2."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return 0.0
    sd = float(x.std(ddof=1))
    return float(x.mean() / sd) if sd > 0 else 0.0


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """Expected maximum of ``n_trials`` independent per-period Sharpe ratios of zero true skill
    with variance ``var_sharpe`` across trials (Bailey & López de Prado 2014, eq. 6, after the
    false strategy theorem): ``sqrt(V) ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))``."""
    if n_trials < 2 or var_sharpe <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(var_sharpe) * ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n)
                                    + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e)))


def deflated_sharpe_ratio(best_returns: np.ndarray, trial_sharpes: np.ndarray) -> dict:
    """DSR of the selected trial.

    Args:
        best_returns: per-period (daily) P&L of the selected trial, float (T,).
        trial_sharpes: per-period Sharpe ratio of EVERY trial of the search (the selected one
            included), float (N,).
    Returns ``{"dsr", "sharpe", "sr0", "n_trials", "var_sharpe", "skew", "kurtosis", "T"}``:
    ``dsr = Φ((SR − SR0) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 SR²))`` with SR0 the expected
    maximum Sharpe of N skill-less trials (:func:`expected_max_sharpe`), γ₃ the skewness and
    γ₄ the (non-excess) kurtosis of the selected returns: the probability that the selected
    trial's true Sharpe is above zero after the selection among N trials. DSR ≥ 0.95 is the
    usual bar; a small DSR says the best trial is what N tries of luck would give.
    """
    r = np.asarray(best_returns, np.float64)
    srs = np.asarray(trial_sharpes, np.float64)
    srs = srs[np.isfinite(srs)]
    T = len(r)
    sr = sharpe(r)
    n = len(srs)
    var = float(srs.var(ddof=1)) if n > 1 else 0.0
    sr0 = expected_max_sharpe(n, var)
    skew = float(stats.skew(r)) if T > 2 and r.std() > 0 else 0.0
    kurt = float(stats.kurtosis(r, fisher=False)) if T > 3 and r.std() > 0 else 3.0
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if T < 2 or denom <= 0:
        dsr = float("nan")
    else:
        dsr = float(stats.norm.cdf((sr - sr0) * math.sqrt(T - 1) / math.sqrt(denom)))
    return {"dsr": dsr, "sharpe": sr, "sr0": float(sr0), "n_trials": n, "var_sharpe": var, "skew": skew,
            "kurtosis": kurt, "T": T}


def pbo_cscv(perf: np.ndarray, n_blocks: int = 16, max_combinations: int = 5000, seed: int = 0) -> dict:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu 2017).

    Args:
        perf: per-period P&L matrix, float (T periods, N trials) (one column per trial, rows aligned
            in time). n_blocks: S, even; the T rows are cut into S contiguous blocks (S is lowered
            to the largest even number ≤ T/2 when T is short). max_combinations: when C(S, S/2) is
            larger, that many combinations are drawn at random (seeded) instead of all.
    For every choice of S/2 blocks as in-sample (the rest out-of-sample), the trial with the best
    in-sample Sharpe is taken and its out-of-sample Sharpe ranked among all trials: relative rank
    ω = rank / (N + 1), logit λ = ln(ω / (1 − ω)). PBO = the fraction of λ ≤ 0 (the in-sample
    winner ranks at or below the out-of-sample median). Returns ``{"pbo", "combinations",
    "blocks", "logit_median", "trials", "periods"}``; ``pbo`` NaN with fewer than 2 trials or 4
    periods.
    """
    M = np.asarray(perf, np.float64)
    T, N = M.shape
    S = min(int(n_blocks) - int(n_blocks) % 2, (T // 2) - (T // 2) % 2)
    if N < 2 or S < 2:
        return {"pbo": float("nan"), "combinations": 0, "blocks": S, "logit_median": float("nan"),
                "trials": N, "periods": T}
    edges = np.linspace(0, T, S + 1).astype(int)
    blocks = [np.arange(edges[i], edges[i + 1]) for i in range(S)]
    total = math.comb(S, S // 2)
    if total <= max_combinations:
        combos = list(itertools.combinations(range(S), S // 2))
    else:
        rng = np.random.default_rng(seed)
        drawn = {tuple(sorted(rng.choice(S, S // 2, replace=False))) for _ in range(max_combinations * 2)}
        combos = sorted(drawn)[:max_combinations]
    # per-block sums of x and x² let any union of blocks give its mean and std cheaply
    s1 = np.stack([M[b].sum(0) for b in blocks])
    s2 = np.stack([(M[b] ** 2).sum(0) for b in blocks])
    cnt = np.array([len(b) for b in blocks], np.float64)

    def sr(sel):
        n = cnt[list(sel)].sum()
        a = s1[list(sel)].sum(0)
        b = s2[list(sel)].sum(0)
        mean = a / n
        var = np.maximum((b - n * mean * mean) / max(n - 1, 1), 0.0)
        sd = np.sqrt(var)
        return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), 0.0)

    logits = []
    allb = set(range(S))
    for c in combos:
        is_sr = sr(c)
        oos_sr = sr(tuple(sorted(allb - set(c))))
        best = int(np.argmax(is_sr))
        rank = float((oos_sr < oos_sr[best]).sum() + 0.5 * ((oos_sr == oos_sr[best]).sum() - 1) + 1)
        w = rank / (N + 1)
        logits.append(math.log(w / (1 - w)))
    lg = np.array(logits)
    return {"pbo": float((lg <= 0).mean()), "combinations": len(combos), "blocks": S,
            "logit_median": float(np.median(lg)), "trials": N, "periods": T}
