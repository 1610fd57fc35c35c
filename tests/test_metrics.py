import pytest

from poft.metrics import roc_auc


def test_auc_hand_computed():
    # positives 0.9, 0.4 ; negatives 0.5, 0.1 -> pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
    assert roc_auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == 0.75
    assert roc_auc([1, 2, 3], [False, True, True]) == 1.0
    assert roc_auc([1, 2, 3], [True, True, False]) == 0.0
    # a tie between classes counts one half: positives 1, 2 ; negative 2 -> (0 + 0.5) / 2
    assert roc_auc([1.0, 2.0, 2.0], [True, True, False]) == 0.25


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="AUC needs both classes, got 2 positive and 0 negative"):
        roc_auc([1, 2], [True, True])
