"""relax: the soft intersection/union on binary inputs, and the Lovász extension by its definition."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from loss_inputs import seeds, small_dims

from iou_lib import metrics, relax


@settings(deadline=None, max_examples=50)
@given(seed=seeds, n=small_dims)
def test_soft_sets_are_exact_on_binary_inputs(seed, n):
    gen = torch.Generator().manual_seed(seed)
    p = (torch.rand(3, 2 * n, generator=gen) < 0.5).float()
    y = (torch.rand(3, 2 * n, generator=gen) < 0.5).float()
    torch.testing.assert_close(relax.soft_intersection(p, y), (p.bool() & y.bool()).sum(-1).float())
    torch.testing.assert_close(relax.soft_union(p, y), (p.bool() | y.bool()).sum(-1).float())


@settings(deadline=None, max_examples=50)
@given(seed=seeds, n=small_dims)
def test_lovasz_extension_of_jaccard_is_one_minus_iou_at_vertices(seed, n):
    gen = torch.Generator().manual_seed(seed)
    target = (torch.rand(n + 1, generator=gen) < 0.5).long()
    wrong = torch.rand(n + 1, generator=gen) < 0.5
    pred = torch.where(wrong, 1 - target, target)
    iou = metrics.binary_iou(pred.unsqueeze(0), target.unsqueeze(0), absent_score=1.0)
    value = relax.lovasz_extension(wrong.double(), lambda s: relax.jaccard_set_loss(s, target))
    assert abs(value.item() - (1 - iou.item())) < 1e-6


def test_lovasz_extension_is_the_max_over_the_base_polytope_for_a_submodular_function():
    # For a submodular set function with f(empty) = 0 the extension equals max over the greedy vertices,
    # i.e. max over all orderings of sum_i m_{pi_i} (f(S_i) - f(S_{i-1})) (Edmonds' greedy theorem).
    target = torch.tensor([1, 0, 1, 1, 0])
    m = torch.tensor([0.3, -0.2, 1.1, 0.0, 0.7], dtype=torch.float64)

    def f(mask):
        return relax.jaccard_set_loss(mask, target)

    best = -float("inf")
    for order in itertools.permutations(range(5)):
        prefix, prev, total = torch.zeros(5, dtype=torch.bool), 0.0, 0.0
        for i in order:
            prefix = prefix.clone()
            prefix[i] = True
            cur = float(f(prefix))
            total += m[i].item() * (cur - prev)
            prev = cur
        best = max(best, total)
    assert abs(relax.lovasz_extension(m, f).item() - best) < 1e-12


def test_lovasz_extension_is_piecewise_linear_and_differentiable():
    target = torch.tensor([1, 0, 1, 0])
    m = torch.tensor([0.5, 0.2, 0.9, 0.1], dtype=torch.float64, requires_grad=True)
    value = relax.lovasz_extension(m, lambda s: relax.jaccard_set_loss(s, target))
    (grad,) = torch.autograd.grad(value, m)
    # the gradient is the vector of marginal gains along the sorted order 2, 0, 1, 3 with F = {0, 2}:
    # D({2}) = 1/2, D({2, 0}) = 2/2, D({2, 0, 1}) = 3/3, D(all) = 4/4
    gains = torch.tensor([1 / 2, 0.0, 1 / 2, 0.0], dtype=torch.float64)
    torch.testing.assert_close(grad, gains)
    torch.testing.assert_close(value, (m.detach() * gains).sum())


def test_jaccard_set_loss_of_no_error_is_zero_even_without_foreground():
    assert relax.jaccard_set_loss(torch.zeros(3, dtype=torch.bool), torch.zeros(3)).item() == 0


def test_lovasz_extension_rejects_non_vectors():
    with pytest.raises(ValueError, match=r"errors must be a 1-D vector, got shape \(2, 2\)"):
        relax.lovasz_extension(torch.zeros(2, 2), lambda s: 0.0)
