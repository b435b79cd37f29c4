"""SCS (eq. 10 of NH-CSR) against hand computations, and the loss term's direction."""

import math

import pytest
import torch

from fesr.models.scs import draw_groups, group_cosine_similarity, stochastic_cosine_similarity


def test_group_cosine_similarity_matches_hand_computation():
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    index = torch.tensor([[[0, 1], [2, 3]]])
    # cos([1, 2], [1, 0]) = 1 / sqrt(5);  cos([3, 4], [0, 1]) = 4 / 5
    expected = (1 / math.sqrt(5) + 4 / 5) / 2
    got = group_cosine_similarity(pred, target, index)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_mean_over_batch_and_draws_by_hand():
    """B = 2 samples, a group of all 3 points: the mean of the two per-sample cosines."""
    pred = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]).unsqueeze(-1)
    target = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]]).unsqueeze(-1)
    # sample 0: 1 / (sqrt 2 sqrt 2) = 1/2; sample 1: proportional vectors -> 1
    scs = stochastic_cosine_similarity(
        pred, target, draws=5, group=3, generator=torch.Generator().manual_seed(0)
    )
    assert scs.item() == pytest.approx(0.75, rel=1e-6)


def test_scs_is_one_and_loss_term_zero_at_a_perfect_fit():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 200, 1, generator=g) + 0.1
    scs = stochastic_cosine_similarity(target.clone(), target, draws=33, group=33, generator=g)
    assert scs.item() == pytest.approx(1.0, abs=1e-6)
    assert (1 - scs).item() == pytest.approx(0.0, abs=1e-6)


def test_loss_term_falls_as_prediction_aligns():
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 300, 1, generator=g)
    noise = torch.randn(2, 300, 1, generator=g)
    terms = []
    for t in [2.0, 1.0, 0.5, 0.1, 0.0]:
        gen = torch.Generator().manual_seed(7)  # the same groups for every t
        terms.append(
            1 - stochastic_cosine_similarity(target + t * noise, target, 33, 33, gen).item()
        )
    assert all(a > b for a, b in zip(terms, terms[1:], strict=False)), terms
    assert terms[-1] == pytest.approx(0.0, abs=1e-6)


def test_groups_are_distinct_points_and_reproducible():
    idx = draw_groups(2, 50, 4, 10, torch.Generator().manual_seed(3))
    assert idx.shape == (2, 4, 10)
    assert all(len(set(row.tolist())) == 10 for row in idx.reshape(-1, 10))
    torch.testing.assert_close(idx, draw_groups(2, 50, 4, 10, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="group size 60"):
        draw_groups(1, 50, 1, 60)


def test_scs_gradient_raises_similarity():
    """One gradient step on 1 - SCS moves the prediction towards the target's pattern."""
    g = torch.Generator().manual_seed(2)
    target = torch.rand(1, 64, 1, generator=g)
    pred = torch.rand(1, 64, 1, generator=g).requires_grad_()
    term = 1 - stochastic_cosine_similarity(pred, target, 8, 16, torch.Generator().manual_seed(0))
    term.backward()
    with torch.no_grad():
        after = 1 - stochastic_cosine_similarity(
            pred - 0.5 * pred.grad, target, 8, 16, torch.Generator().manual_seed(0)
        )
    assert after < term.detach()


def test_centred_form_is_the_pearson_correlation_of_each_group():
    g = torch.Generator().manual_seed(4)
    pred, target = torch.rand(2, 40, generator=g), torch.rand(2, 40, generator=g)
    index = draw_groups(2, 40, 3, 10, torch.Generator().manual_seed(5))
    got = group_cosine_similarity(pred, target, index, form="centred")
    corr = [
        torch.corrcoef(torch.stack([pred[b, index[b, t]], target[b, index[b, t]]]))[0, 1]
        for b in range(2)
        for t in range(3)
    ]
    assert got.item() == pytest.approx(torch.stack(corr).mean().item(), rel=1e-5)
    # a constant offset changes the raw cosine, not the centred one
    shifted = group_cosine_similarity(pred + 5.0, target, index, form="centred")
    assert shifted.item() == pytest.approx(got.item(), rel=1e-5)
    assert group_cosine_similarity(pred + 5.0, target, index).item() != pytest.approx(
        group_cosine_similarity(pred, target, index).item(), rel=1e-3
    )
    with pytest.raises(ValueError, match="SCS form 'mean'"):
        group_cosine_similarity(pred, target, index, form="mean")


def test_centred_gradient_is_larger_where_the_raw_cosine_saturates():
    """Positive fields near the target (the issue's case): the raw cosine is above 0.99 and its
    gradient small; the centred form's gradient is several times larger."""
    g = torch.Generator().manual_seed(6)
    target = 0.1 + 0.6 * torch.rand(4, 512, 1, generator=g)
    pred = (target + 0.01 * torch.randn(4, 512, 1, generator=g)).requires_grad_()
    norms = {}
    for form in ("raw", "centred"):
        gen = torch.Generator().manual_seed(0)
        scs = stochastic_cosine_similarity(pred, target, 33, 33, gen, form=form)
        if form == "raw":
            assert scs.item() > 0.99
        (grad,) = torch.autograd.grad(1 - scs, pred)
        norms[form] = grad.norm().item()
    assert norms["raw"] > 0
    assert norms["centred"] > 2 * norms["raw"], norms
