"""Token losses and the ACT loss: stablemax against float64 by hand, normalisation, weights, metrics (docs/reference-code.md 5)."""

import math

import torch
import torch.nn.functional as F

from trm.losses import act_loss, softmax_cross_entropy, stablemax_cross_entropy
from trm_halting.strategies import ACTOptions, ACTQ, Fixed, FixedOptions


def _stablemax_by_hand(logits, label):
    s = [v + 1 if v >= 0 else 1 / (1 - v) for v in logits]
    return -math.log(s[label] / sum(s))


def test_stablemax_matches_a_float64_hand_computation():
    rows = [[2.0, -1.0, 0.0, 0.5], [-3.0, -0.25, 4.0, -7.5], [0.0, 0.0, 0.0, 0.0]]
    labels = [0, 3, 2]
    logits = torch.tensor(rows, dtype=torch.float32)
    mask = torch.ones(3, dtype=torch.bool)
    loss = stablemax_cross_entropy(logits, torch.tensor(labels), mask)
    assert loss.dtype == torch.float64
    for got, row, label in zip(loss.tolist(), rows, labels):
        assert abs(got - _stablemax_by_hand(row, label)) < 1e-12
    masked = stablemax_cross_entropy(logits, torch.tensor([0, -100, 2]), torch.tensor([True, False, True]))
    assert masked[1].item() == 0.0


def test_softmax_matches_torch():
    logits = torch.randn(2, 5, 7)
    labels = torch.randint(0, 7, (2, 5))
    labels[0, 1] = -100
    mask = labels != -100
    ours = softmax_cross_entropy(logits, labels, mask)
    ref = F.cross_entropy(logits.view(-1, 7), labels.view(-1), ignore_index=-100, reduction="none").view(2, 5)
    torch.testing.assert_close(ours, ref)


def _outputs(logits, labels, halted, steps, q_halt):
    return {"logits": logits, "labels": labels, "halted": torch.tensor(halted), "steps": torch.tensor(steps),
            "q_halt": torch.tensor(q_halt), "q_continue": torch.zeros(len(halted))}


def test_act_loss_normalises_per_sequence_sums_over_batch_and_weights_halting():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, requires_grad=True)
    labels = torch.randint(0, 5, (3, 4))
    labels[1, 1:] = -100  # one supervised token: weighs as much as a full sequence
    labels[2, :] = -100  # no supervised token: no loss, not counted
    outputs = _outputs(logits, labels, [True, True, False], [2, 3, 1], [0.3, -0.2, 1.0])
    loss, metrics = act_loss(outputs, ACTQ(ACTOptions()), loss_type="stablemax", halt_loss_weight=0.5)
    per_token = stablemax_cross_entropy(logits.detach(), labels, labels != -100)
    expected_lm = per_token[0].sum() / 4 + per_token[1].sum() / 1
    torch.testing.assert_close(metrics["lm_loss"], expected_lm)
    preds = logits.detach().argmax(-1)
    correct = torch.tensor([bool((preds[0] == labels[0]).all()), bool(preds[1, 0] == labels[1, 0]), True])
    expected_q = F.binary_cross_entropy_with_logits(outputs["q_halt"], correct.float(), reduction="sum")
    torch.testing.assert_close(metrics["q_halt_loss"], expected_q)
    torch.testing.assert_close(loss, expected_lm + 0.5 * expected_q.double())
    assert metrics["count"].item() == 2  # row 2 did not halt (and has no tokens)
    assert metrics["steps"].item() == 5
    expected_acc = (preds[0] == labels[0]).float().mean() + (preds[1, 0] == labels[1, 0]).float()
    torch.testing.assert_close(metrics["accuracy"].float(), expected_acc)
    loss.backward()
    assert logits.grad[2].abs().sum() == 0


def test_exact_and_q_halt_accuracy():
    labels = torch.tensor([[1, 2], [0, 1]])
    logits = F.one_hot(torch.tensor([[1, 2], [0, 0]]), 3).float() * 5  # row 0 right, row 1 wrong
    outputs = _outputs(logits, labels, [True, True], [1, 1], [2.0, 3.0])
    _, metrics = act_loss(outputs, ACTQ(ACTOptions()))
    assert metrics["exact_accuracy"].item() == 1
    assert metrics["q_halt_accuracy"].item() == 1  # row 0: q >= 0 and correct; row 1: q >= 0 but wrong


def test_fixed_strategy_adds_no_halting_term():
    logits = torch.randn(2, 3, 4)
    labels = torch.randint(0, 4, (2, 3))
    loss, metrics = act_loss(_outputs(logits, labels, [True, True], [1, 1], [0.0, 0.0]), Fixed(FixedOptions()),
                             loss_type="softmax")
    torch.testing.assert_close(loss, metrics["lm_loss"])
    assert set(metrics) == {"count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss"}
