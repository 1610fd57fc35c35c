"""Seed x item effects: hand-worked intervals, calibration by simulation against a known truth, verdicts,
the combination of cells and power planning."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from poft.report.effects import (checkpoint_effect, combine_cells, method_effect, paired_effect, plan_power,
                                 pooled_effect, variance_components, verdict_of)
from poft.report.stats import paired_effect as reexported


def test_crossed_by_hand():
    """S = 2 seeds, n = 3 items, d = [[1, 2, 3], [2, 2, 5]].

    grand mean 15/6 = 2.5; seed means 2, 3; item means 1.5, 2, 4.
    MS_S = 3 * (0.5^2 + 0.5^2) / 1 = 1.5
    MS_I = 2 * (1^2 + 0.5^2 + 1.5^2) / 2 = 3.5
    residuals d - seed - item + grand = [[0, .5, -.5], [0, -.5, .5]]: MS_E = 1 / ((2-1)(3-1)) = 0.5
    V = (MS_S + MS_I - MS_E) / (S n) = 4.5 / 6 = 0.75, se = sqrt(0.75) = 0.8660254
    df = V^2 / ((1.5/6)^2/1 + (3.5/6)^2/2 + (0.5/6)^2/2) = 0.5625 / (0.0625 + 0.1701389 + 0.0034722) = 81/34
    = 2.3823529; scipy: t_{0.975, 81/34} = 3.7041719, t_{0.8, 81/34} = 1.0198516
    interval 2.5 -+ 3.7041719 * 0.8660254 = [-0.7079070, 5.7079070]; mde = (3.7041719 + 1.0198516) 0.8660254
    = 4.0911244. var_seed = (1.5 - 0.5)/3 = 1/3, var_item = (3.5 - 0.5)/2 = 1.5, var_resid = 0.5.
    """
    e = paired_effect([[1, 2, 3], [2, 2, 5]])
    q, q80 = stats.t.ppf(0.975, 81 / 34), stats.t.ppf(0.8, 81 / 34)
    se = math.sqrt(0.75)
    assert e["level_used"] == "method" and (e["n_seeds"], e["n_items"]) == (2, 3)
    assert (e["ms_seed"], e["ms_item"], e["ms_resid"]) == pytest.approx((1.5, 3.5, 0.5), abs=1e-12)
    assert (e["var_seed"], e["var_item"], e["var_resid"]) == pytest.approx((1 / 3, 1.5, 0.5), abs=1e-12)
    assert e["mean"] == pytest.approx(2.5, abs=1e-12) and e["se"] == pytest.approx(se, abs=1e-12)
    assert e["df"] == pytest.approx(81 / 34, abs=1e-9)
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((2.5 - q * se, 2.5 + q * se), abs=1e-9)
    assert e["ci_low"] == pytest.approx(-0.7079070, abs=1e-6)
    assert e["mde"] == pytest.approx((q + q80) * se, abs=1e-9) and e["mde"] == pytest.approx(4.0911244, abs=1e-6)
    assert e["p_value"] == pytest.approx(2 * stats.t.sf(2.5 / se, 81 / 34), abs=1e-12)
    assert reexported is paired_effect


def test_floored_seed_component_by_hand():
    """d = [[0, 2, 4], [1, 1, 4]]: both seed means are 2, so MS_S = 0 < MS_E and the seed component is 0.

    item means 0.5, 1.5, 4 (grand 2): MS_I = 2 (2.25 + 0.25 + 4) / 2 = 6.5; residuals [[-.5, .5, 0], [.5, -.5, 0]]:
    MS_E = 1 / 2 = 0.5. The floor: V = MS_I / (S n) = 6.5/6 = 13/12, se = 1.0408330, df = n - 1 = 2;
    t_{0.975, 2} = 4.3026527: interval 2 -+ 4.4783 = [-2.4783465, 6.4783465].
    """
    e = paired_effect([[0, 2, 4], [1, 1, 4]])
    se = math.sqrt(13 / 12)
    assert e["var_seed"] == 0 and e["var_item"] == pytest.approx(3.0) and e["var_resid"] == pytest.approx(0.5)
    assert e["se"] == pytest.approx(se, abs=1e-12) and e["df"] == pytest.approx(2.0, abs=1e-12)
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((2 - 4.302652729749462 * se, 2 + 4.302652729749462 * se),
                                                         abs=1e-9)


def test_weighted_by_hand():
    """The first d with weights (1, 1, 2) -> w = (1/4, 1/4, 1/2), sum w^2 = W = 3/8.

    mean = 1.5/4 + 2/4 + 4/2 = 2.875.  V = (MS_S - MS_E)/(S n) + MS_I W / S = 1/6 + 3.5 * 3/16 = 0.8229167.
    c = (1/6, 3/16, -1/6): df = V^2 / ((1.5/6)^2/1 + (3.5*3/16)^2/2 + (0.5/6)^2/2)
    = 0.6771918 / (0.0625 + 0.2153320 + 0.0034722) = 2.4073288.
    """
    e = paired_effect([[1, 2, 3], [2, 2, 5]], weights=[1, 1, 2])
    v = 1 / 6 + 3.5 * 3 / 16
    df = v ** 2 / ((1.5 / 6) ** 2 + (3.5 * 3 / 16) ** 2 / 2 + (0.5 / 6) ** 2 / 2)
    assert e["mean"] == pytest.approx(2.875, abs=1e-12) and e["se"] == pytest.approx(math.sqrt(v), abs=1e-12)
    assert e["df"] == pytest.approx(df, abs=1e-9) and df == pytest.approx(2.4073288, abs=1e-6)
    q = stats.t.ppf(0.975, df)
    assert e["ci_high"] == pytest.approx(2.875 + q * math.sqrt(v), abs=1e-9)
    # equal weights give the unweighted answer
    assert paired_effect([[1, 2, 3], [2, 2, 5]], weights=[7, 7, 7])["se"] == pytest.approx(math.sqrt(0.75))


def test_checkpoint_clustered_by_hand():
    """One pair of checkpoints, 0/1 items: d = (1, 0, -1, 1, 1, 0) in groups (0, 0, 1, 1, 2, 2).

    mean = 2/6 = 1/3; residuals (2, -1, -4, 2, 2, -1)/3; group sums of w r (w = 1/6): 1/18, -1/9, 1/18.
    CR1: V = G/(G-1) sum_g (.)^2 = 3/2 * 6/324 = 1/36 -> se = 1/6, df = G - 1 = 2; t = 2 and for df = 2
    P(|T| > t) = 1 - t / sqrt(t^2 + 2) = 1 - 2/sqrt(6) = 0.1835034. Without groups: V = 6/5 sum (w r)^2
    = 6/5 * 30/324 = 1/9 (= s^2/n), se = 1/3, df = 5. McNemar exact: b = 3, c = 1, p = 2 P(Bin(4, 1/2) <= 1) = 0.625.
    """
    d = [1, 0, -1, 1, 1, 0]
    e = checkpoint_effect(d, groups=[0, 0, 1, 1, 2, 2])
    q = 4.302652729749462
    assert e["level_used"] == "checkpoint" and e["n_groups"] == 3
    assert (e["mean"], e["se"], e["df"]) == pytest.approx((1 / 3, 1 / 6, 2.0), abs=1e-12)
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((1 / 3 - q / 6, 1 / 3 + q / 6), abs=1e-9)
    assert e["p_value"] == pytest.approx(1 - 2 / math.sqrt(6), abs=1e-12)
    assert e["mcnemar_p"] == pytest.approx(0.625, abs=1e-12)
    plain = checkpoint_effect(d)
    assert (plain["se"], plain["df"]) == pytest.approx((1 / 3, 5.0), abs=1e-12)
    assert math.isnan(checkpoint_effect([0.5, 0.2, 0.1])["mcnemar_p"])  # not 0/1 items
    with pytest.raises(ValueError, match="binary"):
        checkpoint_effect([0.5, 0.2], binary=True)


def test_one_seed_is_checkpoint_level_and_never_a_verdict():
    e = paired_effect([[1, 0, -1, 1, 1, 0]], min_effect=0.1)
    assert e["level_used"] == "checkpoint" and e["se"] == pytest.approx(1 / 3) and math.isnan(e["var_seed"])
    assert verdict_of(e) == ("inconclusive", "no method-level interval (1 seed)")


def test_missing_values_keep_a_balanced_design():
    d = np.array([[1, 2, 3, np.nan], [2, 2, 5, 4], [np.nan] * 4])
    e = paired_effect(d, weights=[1, 1, 2, 5])
    assert (e["n_seeds"], e["n_items"], e["n_seeds_dropped"], e["n_items_dropped"]) == (2, 3, 1, 1)
    ref = paired_effect(d[:2, :3], weights=[1, 1, 2])
    assert e["mean"] == pytest.approx(2.875) and e["se"] == pytest.approx(ref["se"])
    # a second seed with nothing left over falls back to one seed
    assert paired_effect([[1, 2], [np.nan, np.nan]])["level_used"] == "checkpoint"
    assert paired_effect([[np.nan, np.nan]])["level_used"] == "none"


def test_groups_at_method_level_are_the_crossed_units():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(3, 6))
    g = [0, 0, 1, 1, 1, 2]
    pooled = np.stack([d[:, :2].mean(1), d[:, 2:5].mean(1), d[:, 5]], axis=1)
    e, ref = paired_effect(d, groups=g), paired_effect(pooled, weights=[2, 3, 1])
    assert e["n_groups"] == 3 and e["mean"] == pytest.approx(d.mean())
    assert (e["se"], e["df"]) == pytest.approx((ref["se"], ref["df"]), abs=1e-12)


def test_one_item_is_a_seed_only_t_interval():
    e = paired_effect([[1.0], [2.0], [4.0]])
    assert e["df"] == pytest.approx(2.0) and e["se"] == pytest.approx(np.std([1, 2, 4], ddof=1) / math.sqrt(3))


# ---- calibration by simulation: R experiments at once, d[r, s, i] ----

R = 4000
SETTINGS = [(S, n) for S in (3, 5) for n in (100, 400)]
GH_X, GH_W = np.polynomial.hermite_e.hermegauss(80)


def continuous(rng, S, n, delta, sd_seed=0.05, sd_item=0.5, sd_resid=1.0):
    """d = Delta + a_s + b_i + e_si with normal components."""
    return (delta + sd_seed * rng.standard_normal((R, S, 1)) + sd_item * rng.standard_normal((R, 1, n))
            + sd_resid * rng.standard_normal((R, S, n)))


def mean_sigmoid(mu, var):
    """E[sigmoid(Z)], Z ~ N(mu, var), by 80-point Gauss-Hermite quadrature."""
    return float(GH_W @ expit(mu + math.sqrt(var) * GH_X)) / math.sqrt(2 * math.pi)


def binary(rng, S, n, tau, sd_theta=1.5, sd_tau=0.5, sd_seed=0.1):
    """0/1 items: logit P(correct) = theta_i + u_s (control) and theta_i + tau_i + v_s (treatment), with item
    difficulty theta_i ~ N(0, sd_theta^2), item effect tau_i ~ N(tau, sd_tau^2), seed effects u_s, v_s ~
    N(0, sd_seed^2) per arm. Each logit is normal over the populations of items and seeds, so the true effect is
    Delta = E sigmoid(N(tau, sd_theta^2 + sd_tau^2 + sd_seed^2)) - E sigmoid(N(0, sd_theta^2 + sd_seed^2))."""
    theta = sd_theta * rng.standard_normal((R, 1, n))
    tau_i = tau + sd_tau * rng.standard_normal((R, 1, n))
    u, v = sd_seed * rng.standard_normal((2, R, S, 1))
    y_c = rng.random((R, S, n)) < expit(theta + u)
    y_t = rng.random((R, S, n)) < expit(theta + tau_i + v)
    var_c = sd_theta ** 2 + sd_seed ** 2
    truth = mean_sigmoid(tau, var_c + sd_tau ** 2) - mean_sigmoid(0, var_c)
    return y_t.astype(float) - y_c, truth


def verdicts(e, min_effect=None):
    """verdict_of for every simulated experiment of a batched `method_effect`."""
    keys = ("mean", "se", "df", "ci_low", "ci_high")
    return [verdict_of({"level_used": "method", **{k: e[k][r] for k in keys}}, min_effect)[0] for r in range(R)]


def coverage(e, truth):
    return float(np.mean((e["ci_low"] <= truth) & (truth <= e["ci_high"])))


@pytest.mark.parametrize("kind", ["continuous", "binary"])
def test_method_interval_covers_and_null_rarely_decides(kind):
    """The 95% interval covers the true Delta in 93-97% of R experiments per (S, n); with Delta = 0 a verdict
    other than "inconclusive" (holds, or fails by an opposite effect; no delta declared) comes out in at most
    5% averaged over the settings. Per setting the bound is 6.5%: with 3 seeds and 400 items the rate is about
    5.5% (Satterthwaite's df is estimated, and the floor of the seed component switches to df = n - 1; see
    the weak spot below), more than the Monte Carlo error of R experiments (0.35 points) explains."""
    seed = {"continuous": 11, "binary": 12}[kind]
    decided = []
    for S, n in SETTINGS:
        rng = np.random.default_rng([seed, S, n])
        d, truth = (continuous(rng, S, n, 0.2), 0.2) if kind == "continuous" else binary(rng, S, n, 0.3)
        d0 = continuous(rng, S, n, 0.0) if kind == "continuous" else binary(rng, S, n, 0.0)[0]
        cov = coverage(method_effect(d), truth)
        rate = np.mean([v != "inconclusive" for v in verdicts(method_effect(d0))])
        decided.append(rate)
        print(f"{kind} S={S} n={n}: Delta={truth:.4f} coverage={cov:.4f} null decided={rate:.4f}")
        assert 0.93 <= cov <= 0.97, (S, n, cov)
        assert rate <= 0.065, (S, n, rate)
    assert np.mean(decided) <= 0.05


def test_known_weak_spot_three_seeds_with_seed_noise_near_residual():
    """A limit worth knowing, not a target: with 3 seeds, no item heterogeneity and n var_seed = 2 var_resid,
    the seed component is floored at 0 in about a quarter of experiments (MS_S < MS_E), where the interval falls
    back to the item-only df n - 1 and ignores seed noise; coverage drops to about 92%. 5 seeds recover 95%."""
    rng = np.random.default_rng(5)
    cov = {S: coverage(method_effect(continuous(rng, S, 400, 0.0, sd_seed=math.sqrt(2 / 400), sd_item=0.0)), 0.0)
           for S in (3, 5)}
    print("weak spot coverage", cov)
    assert cov[3] >= 0.90 and 0.93 <= cov[5] <= 0.97


@pytest.mark.parametrize("sd, expected", [((0.02, 0.1, 0.5), "fails"), ((5.0, 20.0, 40.0), "inconclusive")])
def test_powered_null(sd, expected):
    """Delta = 0, delta = 1.0: small variances rule out an effect >= 1 (fails: powered null) in most experiments,
    large ones do not (inconclusive); and where the true effect is delta itself, "fails" stays rare (<= 5%)."""
    rng = np.random.default_rng(7)
    v = verdicts(method_effect(continuous(rng, 3, 100, 0.0, *sd)), min_effect=1.0)
    assert np.mean([x == expected for x in v]) >= 0.9
    at_delta = verdicts(method_effect(continuous(rng, 3, 100, 1.0, *sd)), min_effect=1.0)
    assert np.mean([x == "fails" for x in at_delta]) <= 0.05


# ---- verdicts, cells, pooling ----

def cell(mean, se, df=10.0, level=0.95):
    q = stats.t.ppf(1 - (1 - level) / 2, df)
    return {"level_used": "method", "level": level, "mean": mean, "se": se, "df": df,
            "ci_low": mean - q * se, "ci_high": mean + q * se}


def test_verdict_of():
    assert verdict_of(cell(0.3, 0.1)) == ("holds", "interval [0.07719, 0.5228] excludes 0 in the claimed direction")
    assert verdict_of(cell(-0.3, 0.1)) == ("fails",
                                           "interval [-0.5228, -0.07719] excludes 0 against the claimed direction")
    assert verdict_of(cell(-0.3, 0.1), direction=-1)[0] == "holds"
    assert verdict_of(cell(0.3, 0.1), direction=-1)[0] == "fails"
    assert verdict_of(cell(0.0, 0.1), min_effect=0.5) == (
        "fails", "powered null: interval [-0.2228, 0.2228] rules out an effect of 0.5 or more in the claimed direction")
    assert verdict_of(cell(0.0, 0.1), min_effect=0.2) == (
        "inconclusive", "interval [-0.2228, 0.2228] contains 0 and does not rule out 0.2")
    assert verdict_of(cell(0.0, 0.1)) == ("inconclusive",
                                          "interval [-0.2228, 0.2228] contains 0 and no min_effect declared")
    # less is better: the claimed side is the lower bound, -0.2228 > -0.5 rules out a drop of 0.5
    assert verdict_of(cell(0.0, 0.1), min_effect=0.5, direction=-1)[0] == "fails"
    # min_effect falls back to the effect's own
    assert verdict_of({**cell(0.0, 0.1), "min_effect": 0.5})[0] == "fails"


def test_combine_cells_by_hand():
    """Cells (mean, se) = (0.3, 0.1), (0.1, 0.1), (0.5, 0.2), df = 10, t_{0.975, 10} = 2.2281389.

    Per cell: holds, inconclusive ([-0.123, 0.323], delta = 0.2), holds -> intersection-union: inconclusive.
    One-sided p = t.sf(mean/se, 10) = 0.00667, 0.17044, 0.01574; Holm at alpha = 0.025: 0.00667 <= 0.025/3,
    then 0.01574 > 0.025/2 stops -> 1 cell.
    DerSimonian-Laird: w = (100, 100, 25), fixed mean 52.5/225 = 0.2333; Q = 100 (1/15)^2 + 100 (2/15)^2
    + 25 (4/15)^2 = 4; C = 225 - 20625/225 = 133.333; tau^2 = (4 - 2)/C = 0.015; I^2 = (4 - 2)/4 = 0.5.
    Random-effects weights 1/(se^2 + tau^2) = (40, 40, 18.1818): mean = 25.0909/98.1818 = 0.2555556,
    se = 1/sqrt(98.1818) = 0.1009217.
    """
    cells = {"b1/d1": cell(0.3, 0.1), "b1/d2": cell(0.1, 0.1), "b2/d1": cell(0.5, 0.2)}
    out = combine_cells(cells, min_effect=0.2)
    assert out["verdict"] == "inconclusive" and out["reason"] == "2 of 3 cells hold, 1 inconclusive"
    assert (out["n_hold"], out["n_fail"], out["n_holm"]) == (2, 0, 1)
    p = out["pooled"]
    assert (p["q"], p["tau2"], p["i2"]) == pytest.approx((4.0, 0.015, 0.5), abs=1e-12)
    assert p["mean"] == pytest.approx(25.09090909 / 98.18181818, abs=1e-9)
    assert p["se"] == pytest.approx(1 / math.sqrt(98.18181818), abs=1e-9)

    bad = combine_cells({**cells, "b2/d2": cell(-0.5, 0.1)}, min_effect=0.2)
    assert bad["verdict"] == "fails" and bad["reason"].startswith("b2/d2 fails: interval [-0.7228, -0.2772]")
    good = combine_cells([cell(0.3, 0.1), cell(0.5, 0.1)], min_effect=0.2)
    assert (good["verdict"], good["reason"], good["n_holm"]) == ("holds", "all 2 cells hold", 2)
    one_seed = combine_cells([cell(0.3, 0.1), {**cell(0.9, 0.1), "level_used": "checkpoint"}], 0.2)
    assert one_seed["verdict"] == "inconclusive" and one_seed["n_holm"] == 1 and one_seed["pooled"]["n_cells"] == 1


def test_pooled_effect_truncates_tau2():
    """Homogeneous cells (Q = 0.5 < K - 1 = 1): tau^2 = 0 and I^2 = 0, the fixed-effect mean (0.25)."""
    p = pooled_effect([0.2, 0.3], [0.1, 0.1])
    assert (p["tau2"], p["i2"], p["q"]) == pytest.approx((0.0, 0.0, 0.5)) and p["mean"] == pytest.approx(0.25)
    assert p["se"] == pytest.approx(math.sqrt(1 / 200))


def test_pooled_effect_of_one_cell_is_that_cells_t_interval():
    """One cell (mean 2.0, se 1.0, df 4): the pooled line repeats the comparison's own interval, 2 -+ t_{0.975,4}
    = 2 -+ 2.7764, not the narrower normal 2 -+ 1.96; without a df it stays normal."""
    p = pooled_effect([2.0], [1.0], dfs=[4.0])
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((2 - 2.776445, 2 + 2.776445))
    assert pooled_effect([2.0], [1.0])["ci_high"] == pytest.approx(2 + 1.959964)
    assert combine_cells([cell(2.0, 1.0, df=4.0)])["pooled"]["ci_low"] == pytest.approx(2 - 2.776445)


# ---- power planning ----

COMPONENTS = {"var_seed": 0.0025, "var_item": 0.25, "var_resid": 1.0}


def test_mde_shrinks_with_seeds_and_items():
    plan = plan_power({**COMPONENTS, "var_seed": 0.0001}, delta=0.1).pivot(index="seeds", columns="items", values="mde")
    assert (np.diff(plan.to_numpy(), axis=0) < 0).all() and (np.diff(plan.to_numpy(), axis=1) < 0).all()
    seedy = plan_power({**COMPONENTS, "var_seed": 0.01}, delta=0.1).pivot(index="seeds", columns="items", values="mde")
    assert (np.diff(seedy.to_numpy(), axis=0) < 0).all()  # seeds always help; items cannot beat the seed noise
    assert seedy.loc[3].min() > 0.1 and plan_power(COMPONENTS, 0.2, seeds=(5,), items=(400,))["powered"].item()


def test_plan_matches_simulated_experiments():
    """Data drawn with COMPONENTS: the planned se is the sd of the estimates, the planned mde the mean of the
    experiments' mdes (within 10%), variance_components recovers the components, and a true effect equal to
    the planned mde is found in about 80% of experiments (S = 5)."""
    rng = np.random.default_rng(9)
    plan = plan_power(COMPONENTS, 0.2, seeds=(3, 5), items=(100, 400))
    for (S, n), row in plan.set_index(["seeds", "items"]).iterrows():
        d = continuous(rng, S, n, 0.0, *(math.sqrt(COMPONENTS[k]) for k in ("var_seed", "var_item", "var_resid")))
        e = method_effect(d)
        assert row["se"] == pytest.approx(e["mean"].std(), rel=0.05)
        assert row["mde"] == pytest.approx(e["mde"].mean(), rel=0.1)
        if S == 5:
            hit = method_effect(d + row["mde"])["ci_low"] > 0
            assert 0.75 <= hit.mean() <= 0.85, hit.mean()
    d = continuous(np.random.default_rng(10), 5, 400, 0.0)[0]
    vc = variance_components(d)
    assert vc["var_resid"] == pytest.approx(1.0, rel=0.05) and vc["var_item"] == pytest.approx(0.25, rel=0.3)
