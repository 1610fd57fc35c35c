"""PoFT loss against numbers worked out by hand, its gradient (claim C11), and the registry."""

import math

import pytest
import torch

from poft.losses import LOSSES, ObjectiveInputs, get_objective, poft_loss, poft_weight, sequence_mean


def test_poft_loss_hand_computed_m3():
    # Sample 1: policy -1.0, aligned (-2, -1, -3) -> mean -2, margin 1.0
    #   -log sigmoid(1) = log(1 + e^-1) = 0.3132616875
    # Sample 2: policy -2.0, aligned (-0.5, -1.0, -1.5) -> mean -1, margin -1.0
    #   -log sigmoid(-1) = log(1 + e^1) = 1.3132616875
    # batch mean = 0.8132616875
    policy = torch.tensor([-1.0, -2.0])
    aligned = torch.tensor([[-2.0, -1.0, -3.0], [-0.5, -1.0, -1.5]])
    assert poft_loss(policy, aligned).item() == pytest.approx(0.8132616875, abs=1e-7)
    # [B] aligned scores (already averaged) give the same number.
    assert poft_loss(policy, aligned.mean(-1)).item() == pytest.approx(0.8132616875, abs=1e-7)
    # beta = 2, gamma = 0.5: margins 2.5 and -1.5 -> log(1+e^-2.5) = 0.0788897, log(1+e^1.5) = 1.7014132
    assert poft_loss(policy, aligned, beta=2.0, gamma=0.5).item() == pytest.approx(
        (math.log1p(math.exp(-2.5)) + math.log1p(math.exp(1.5))) / 2, abs=1e-6
    )
    assert poft_loss(policy, aligned, beta=2.0, gamma=0.5).item() == pytest.approx(0.8901515, abs=1e-6)


@pytest.mark.parametrize("beta,gamma", [(1.0, 0.0), (0.5, 0.3), (3.0, -1.0)])
def test_gradient_is_tau_scaled(beta, gamma):
    """dL/dr_theta = -beta * sigmoid(-(beta * (r_theta - mean_j r_j) + gamma)) / B  (C11)."""
    torch.manual_seed(0)
    policy = torch.randn(5, dtype=torch.float64, requires_grad=True)
    aligned = torch.randn(5, 3, dtype=torch.float64)
    poft_loss(policy, aligned, beta, gamma).backward()
    margin = beta * (policy.detach() - aligned.mean(-1)) + gamma
    expected = -beta * torch.sigmoid(-margin) / 5
    torch.testing.assert_close(policy.grad, expected)
    torch.testing.assert_close(poft_weight(policy, aligned, beta, gamma), torch.sigmoid(-margin))


def test_tau_with_paper_defaults_is_sigmoid_of_aligned_minus_policy():
    policy, aligned = torch.tensor([-1.0]), torch.tensor([[-0.2, -0.4, -0.6]])
    assert poft_weight(policy, aligned).item() == pytest.approx(1 / (1 + math.exp(-(-0.4 + 1.0))))


def test_finite_at_extreme_scores():
    policy = torch.tensor([-1e4, 0.0, -50.0], requires_grad=True)
    aligned = torch.tensor([0.0, -1e4, -50.0])
    loss = poft_loss(policy, aligned)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(policy.grad).all()
    assert loss.item() == pytest.approx((1e4 + 0.0 + math.log(2)) / 3, rel=1e-6)
    assert policy.grad.tolist() == pytest.approx([-1 / 3, 0.0, -0.5 / 3], abs=1e-7)


def test_sequence_mean_and_empty_sample():
    values = torch.tensor([1.0, 3.0, 10.0])
    index = torch.tensor([0, 0, 2])
    out = sequence_mean(values, index, 3)
    assert out[0].item() == 2.0 and math.isnan(out[1].item()) and out[2].item() == 10.0


def test_objectives_from_registry():
    logps = torch.tensor([-1.0, -3.0, -2.0], requires_grad=True)
    index = torch.tensor([0, 0, 1])
    aligned = torch.tensor([[-1.0, -1.0, -1.0], [-3.0, -3.0, -3.0]])
    inputs = ObjectiveInputs(logps, index, logps, index, 2, aligned)
    sft, sft_logs = get_objective("sft")(inputs)
    assert sft.item() == pytest.approx(2.0)  # token mean of 1, 3, 2
    poft, logs = get_objective("poft")(inputs)
    # policy per sample: -2, -2 ; margins -1, +1 -> (log(1+e) + log(1+e^-1)) / 2
    assert poft.item() == pytest.approx((math.log1p(math.e) + math.log1p(math.exp(-1))) / 2)
    assert logs["tau"].item() == pytest.approx((1 / (1 + math.exp(-1)) + 1 / (1 + math.exp(1))) / 2)
    assert sft_logs["ce"].item() == pytest.approx(2.0) and "tau" in sft_logs
    assert set(LOSSES) == {"sft", "poft", "dft"}


def test_dft_by_hand():
    """Two response tokens of probability 1/2 and 1/4:
        L = -(0.5 ln 0.5 + 0.25 ln 0.25) / 2 = (0.346574 + 0.346574) / 2 = 0.346574,
    and, the weights being detached, dL/d log p_t = -sg(p_t) / N = -0.25, -0.125 (SFT's would be -0.5, -0.5)."""
    logps = torch.tensor([math.log(0.5), math.log(0.25)], requires_grad=True)
    index = torch.tensor([0, 1])
    loss, logs = get_objective("dft")(ObjectiveInputs(logps, index, logps, index, 2, None))
    assert loss.item() == pytest.approx(0.346574, abs=1e-6)
    loss.backward()
    assert logps.grad.tolist() == pytest.approx([-0.25, -0.125])
    assert logs["ce"].item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(KeyError, match="unknown loss 'dpo'; valid: dft, poft, sft"):
        get_objective("dpo")


def test_poft_without_scores_is_an_error():
    t = torch.zeros(1)
    with pytest.raises(ValueError, match="needs aligned scores"):
        get_objective("poft")(ObjectiveInputs(t, t.long(), t, t.long(), 1, None))


def test_every_objective_says_what_its_mean_is_over():
    from poft.losses import LOSSES, MEAN_OVER

    assert set(MEAN_OVER) == set(LOSSES) and set(MEAN_OVER.values()) <= {"tokens", "samples"}
