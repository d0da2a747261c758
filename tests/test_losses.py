"""Long-tail losses: each matches its formula, reduces to the plain loss in the
degenerate cases, and rejects bad inputs with messages naming the argument."""

import math

import pytest
import torch
import torch.nn.functional as F

from gitaug.losses import (
    BalancedBCELoss,
    DRWSchedule,
    LDAMLoss,
    LogitAdjustedLoss,
    class_prior,
    effective_number_weights,
    ldam_margins,
)

COUNTS = [500, 120, 40, 9, 3]
C = len(COUNTS)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, C, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, C, (12,), generator=generator)
    return logits, labels


def _log_softmax_nll(logits, labels):
    """Per-sample cross-entropy written out: logsumexp minus the true logit."""
    return torch.logsumexp(logits, dim=1) - logits[torch.arange(len(labels)), labels]


# ---------------------------------------------------------------- arithmetic


def test_class_prior_sums_to_one_and_follows_counts():
    prior = class_prior(COUNTS)
    assert prior.sum().item() == pytest.approx(1.0)
    assert prior[0].item() == pytest.approx(500 / sum(COUNTS))


def test_ldam_margins_follow_inverse_fourth_root_and_peak_at_max_margin():
    margins = ldam_margins([16, 81, 1], max_margin=0.6)
    # Unscaled: 1/2, 1/3, 1 -> scaled by 0.6.
    assert margins.tolist() == pytest.approx([0.3, 0.2, 0.6])


def test_effective_number_weights_formula_and_normalization():
    beta = 0.99
    weights = effective_number_weights(COUNTS, beta=beta)
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in COUNTS], dtype=torch.float64)
    expected = raw / raw.sum() * C
    assert torch.allclose(weights, expected)
    assert weights.sum().item() == pytest.approx(C)
    assert torch.all(weights[1:] > weights[:-1])  # rarer classes weigh more


def test_effective_number_weights_beta_zero_is_uniform():
    assert effective_number_weights(COUNTS, beta=0.0).tolist() == [1.0] * C


# ---------------------------------------------------------------- logit adjustment


def test_logit_adjusted_matches_formula(batch):
    logits, labels = batch
    tau = 0.7
    log_prior = torch.log(torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS))
    expected = _log_softmax_nll(logits + tau * log_prior, labels).mean()
    got = LogitAdjustedLoss(COUNTS, tau=tau).double()(logits, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_logit_adjusted_differs_from_plain_ce_for_imbalanced_counts(batch):
    logits, labels = batch
    plain = F.cross_entropy(logits, labels)
    assert not math.isclose(LogitAdjustedLoss(COUNTS)(logits, labels).item(), plain.item(), rel_tol=1e-3)


def test_logit_adjusted_tau_zero_is_plain_ce(batch):
    logits, labels = batch
    got = LogitAdjustedLoss(COUNTS, tau=0.0)(logits, labels)
    assert got.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-12)


def test_logit_adjusted_uniform_prior_is_plain_ce(batch):
    logits, labels = batch
    got = LogitAdjustedLoss([7] * C, tau=1.0)(logits, labels)
    assert got.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)


def test_logit_adjusted_reduction_none_gives_per_sample(batch):
    logits, labels = batch
    per_sample = LogitAdjustedLoss(COUNTS, reduction="none")(logits, labels)
    assert per_sample.shape == (len(labels),)
    assert per_sample.mean().item() == pytest.approx(LogitAdjustedLoss(COUNTS)(logits, labels).item())


# ---------------------------------------------------------------- LDAM + DRW


def _ldam_by_hand(logits, labels, max_margin, scale, weight=None):
    raw = torch.tensor(COUNTS, dtype=torch.float64) ** -0.25
    margins = raw * max_margin / raw.max()
    adjusted = logits.clone()
    for i, y in enumerate(labels.tolist()):
        adjusted[i, y] -= margins[y]
    per_sample = _log_softmax_nll(scale * adjusted, labels)
    if weight is None:
        return per_sample.mean()
    w = weight[labels]
    return (w * per_sample).sum() / w.sum()


def test_ldam_matches_formula(batch):
    logits, labels = batch
    got = LDAMLoss(COUNTS, max_margin=0.5, scale=30.0)(logits, labels)
    assert got.item() == pytest.approx(_ldam_by_hand(logits, labels, 0.5, 30.0).item(), rel=1e-5)


def test_ldam_with_drw_weights_matches_weighted_formula(batch):
    logits, labels = batch
    schedule = DRWSchedule(COUNTS, start_epoch=3, beta=0.999)
    loss_fn = LDAMLoss(COUNTS, max_margin=0.4, scale=10.0)
    loss_fn.weight = schedule(5)
    expected = _ldam_by_hand(logits, labels, 0.4, 10.0, weight=schedule(5).double())
    assert loss_fn(logits, labels).item() == pytest.approx(expected.item(), rel=1e-5)
    # Before the start epoch the weights are uniform: the unweighted loss.
    loss_fn.weight = schedule(2)
    assert loss_fn(logits, labels).item() == pytest.approx(_ldam_by_hand(logits, labels, 0.4, 10.0).item(), rel=1e-5)


def test_ldam_zero_margin_unit_scale_is_plain_ce(batch):
    logits, labels = batch
    got = LDAMLoss(COUNTS, max_margin=0.0, scale=1.0)(logits, labels)
    assert got.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-12)


def test_ldam_margin_raises_loss_most_for_rare_class():
    logits = torch.zeros(2, C)
    labels = torch.tensor([0, C - 1])
    per_sample = LDAMLoss(COUNTS, scale=1.0, reduction="none")(logits, labels)
    plain = F.cross_entropy(logits, labels, reduction="none")
    assert torch.all(per_sample > plain)
    assert per_sample[1] > per_sample[0]


def test_drw_schedule_switches_at_start_epoch():
    schedule = DRWSchedule(COUNTS, start_epoch=160)
    assert schedule(0).tolist() == [1.0] * C
    assert schedule.weights(159).tolist() == [1.0] * C
    after = schedule(160)
    assert after.sum().item() == pytest.approx(C, rel=1e-6)
    assert torch.allclose(after, effective_number_weights(COUNTS, 0.9999).float())


def test_ldam_weight_moves_with_module_and_can_be_cleared(batch):
    logits, labels = batch
    loss_fn = LDAMLoss(COUNTS, weight=[1.0] * C)
    assert "class_weight" in dict(loss_fn.named_buffers())
    loss_fn.weight = None
    assert loss_fn.weight is None
    assert loss_fn(logits, labels).item() == pytest.approx(_ldam_by_hand(logits, labels, 0.5, 30.0).item(), rel=1e-5)


# ---------------------------------------------------------------- Bal-BCE


def _bce_by_hand(logits, targets):
    """Summed-over-classes, batch-averaged BCE with logits, written out."""
    p = torch.sigmoid(logits)
    per_element = -(targets * torch.log(p) + (1 - targets) * torch.log1p(-p))
    return per_element.sum(dim=1).mean()


def test_balanced_bce_matches_formula(batch):
    logits, labels = batch
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    shifted = logits + torch.log(prior) - torch.log(1 - prior)
    smoothing = 0.2
    targets = torch.full_like(logits, smoothing / C)
    targets[torch.arange(len(labels)), labels] = 1 - smoothing + smoothing / C
    got = BalancedBCELoss(COUNTS, label_smoothing=smoothing)(logits, labels)
    assert got.item() == pytest.approx(_bce_by_hand(shifted, targets).item(), rel=1e-5)


def test_balanced_bce_is_class_count_times_elementwise_mean(batch):
    logits, labels = batch
    loss_fn = BalancedBCELoss(COUNTS)
    shifted = logits + loss_fn.logit_shift.double()
    elementwise_mean = F.binary_cross_entropy_with_logits(shifted, F.one_hot(labels, C).double())
    assert loss_fn(logits, labels).item() == pytest.approx(C * elementwise_mean.item(), rel=1e-6)


def test_balanced_bce_uniform_prior_is_bce_shifted_by_minus_log_c_minus_one(batch):
    logits, labels = batch
    got = BalancedBCELoss([4] * C)(logits, labels)
    targets = F.one_hot(labels, C).double()
    expected = _bce_by_hand(logits - math.log(C - 1), targets)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------- device, dtype, gradients


@pytest.mark.parametrize(
    "loss_fn", [LogitAdjustedLoss(COUNTS), LDAMLoss(COUNTS), BalancedBCELoss(COUNTS, label_smoothing=0.1)]
)
def test_losses_follow_logits_dtype_and_give_gradients(loss_fn):
    logits = torch.randn(6, C, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 4])
    loss = loss_fn(logits, labels)
    assert loss.dtype == torch.float64
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "loss_fn, buffers",
    [
        (LogitAdjustedLoss(COUNTS), {"log_prior"}),
        (LDAMLoss(COUNTS, weight=[2.0] * C), {"margins", "class_weight"}),
        (BalancedBCELoss(COUNTS), {"logit_shift"}),
    ],
)
def test_loss_constants_are_buffers_that_follow_the_module(loss_fn, buffers):
    assert set(dict(loss_fn.named_buffers())) == buffers
    assert list(loss_fn.parameters()) == []
    moved = loss_fn.to(torch.float64)
    assert all(buffer.dtype == torch.float64 for buffer in moved.buffers())
    assert set(moved.state_dict()) == buffers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_losses_move_to_cuda():
    logits = torch.randn(4, C, device="cuda")
    labels = torch.tensor([0, 1, 2, 4], device="cuda")
    for loss_fn in (LogitAdjustedLoss(COUNTS), LDAMLoss(COUNTS, weight=[1.0] * C), BalancedBCELoss(COUNTS)):
        loss_fn = loss_fn.to("cuda")
        assert loss_fn(logits, labels).device.type == "cuda"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("cls", [LogitAdjustedLoss, LDAMLoss, BalancedBCELoss])
def test_counts_must_be_positive(cls):
    with pytest.raises(ValueError, match=r"class_counts must all be positive, got 0 at index 3"):
        cls([5, 4, 3, 0, 1])


@pytest.mark.parametrize("cls", [LogitAdjustedLoss, LDAMLoss, BalancedBCELoss])
def test_counts_must_be_one_dimensional(cls):
    with pytest.raises(ValueError, match=r"class_counts must be a non-empty 1-D sequence, got shape \(2, 2\)"):
        cls([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"class_counts must be a non-empty 1-D"):
        cls([])


def test_counts_must_be_finite_and_numeric():
    with pytest.raises(ValueError, match=r"class_counts must be finite, got inf at index 1"):
        LogitAdjustedLoss([3.0, float("inf")])
    with pytest.raises(TypeError, match=r"class_counts must"):
        LogitAdjustedLoss("abc")


def test_hyper_parameters_are_range_checked():
    with pytest.raises(ValueError, match=r"tau must be in \[0.0, inf\], got -1.0"):
        LogitAdjustedLoss(COUNTS, tau=-1.0)
    with pytest.raises(ValueError, match=r"tau must be finite, got nan"):
        LogitAdjustedLoss(COUNTS, tau=float("nan"))
    with pytest.raises(ValueError, match=r"max_margin must be in \[0.0, inf\], got -0.1"):
        LDAMLoss(COUNTS, max_margin=-0.1)
    with pytest.raises(ValueError, match=r"scale must be in \(0.0, inf\], got 0.0"):
        LDAMLoss(COUNTS, scale=0.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0.0, 1.0\), got 1.0"):
        BalancedBCELoss(COUNTS, label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"beta must be in \[0.0, 1.0\), got 1.0"):
        DRWSchedule(COUNTS, start_epoch=1, beta=1.0)
    with pytest.raises(ValueError, match=r"start_epoch must be >= 0, got -2"):
        DRWSchedule(COUNTS, start_epoch=-2)
    with pytest.raises(TypeError, match=r"tau must be a real number, got 'big'"):
        LogitAdjustedLoss(COUNTS, tau="big")
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        LDAMLoss(COUNTS, reduction="avg")
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        BalancedBCELoss([10])


def test_ldam_weight_is_validated():
    loss_fn = LDAMLoss(COUNTS)
    with pytest.raises(ValueError, match=rf"weight must have shape \({C},\), got \(3,\)"):
        loss_fn.weight = torch.ones(3)
    with pytest.raises(ValueError, match=r"weight must be finite and >= 0, got -1.0 at index 2"):
        loss_fn.weight = torch.tensor([1.0, 1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "loss_fn", [LogitAdjustedLoss(COUNTS), LDAMLoss(COUNTS), BalancedBCELoss(COUNTS)], ids=["la", "ldam", "bbce"]
)
def test_forward_rejects_bad_shapes_and_labels(loss_fn):
    logits = torch.randn(4, C)
    with pytest.raises(ValueError, match=rf"logits must have shape \(N, {C}\), got \(4, 3\)"):
        loss_fn(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=rf"logits must have shape \(N, {C}\), got \({C},\)"):
        loss_fn(torch.randn(C), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have length N=4 \(one per batch row\), got 3"):
        loss_fn(logits, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=rf"labels must be in \[0, {C}\), got {C} at index 2"):
        loss_fn(logits, torch.tensor([0, 1, C, 2]))
    with pytest.raises(ValueError, match=rf"labels must be in \[0, {C}\), got -1 at index 0"):
        loss_fn(logits, torch.tensor([-1, 1, 2, 2]))
    with pytest.raises(TypeError, match=r"labels must be an integer tensor, got dtype torch.float32"):
        loss_fn(logits, torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels must be 1-D of shape \(N,\), got shape \(4, 1\)"):
        loss_fn(logits, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match=r"logits must be a floating-point tensor"):
        loss_fn(torch.zeros(4, C, dtype=torch.long), torch.zeros(4, dtype=torch.long))
