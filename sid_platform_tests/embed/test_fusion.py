"""Fusion: every part counts by its weight, not by its scale or dimension."""

import numpy as np
import pytest

from sid_platform.embed.fusion import fuse, normalize_rows


def test_parts_are_normalized_then_weighted_then_concatenated():
    clip = np.array([[3.0, 4.0], [0.0, 0.0]])
    t5 = np.array([[0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    fused = fuse([clip, t5], weights=[2.0, 0.5])
    third = 0.5 / np.sqrt(3.0)
    expected = np.array([[1.2, 1.6, 0.0, 0.5, 0.0], [0.0, 0.0, third, third, third]])
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, expected, rtol=1e-6)


def test_default_weights_give_each_part_unit_norm():
    rng = np.random.default_rng(0)
    fused = fuse([rng.normal(size=(4, 3)) * 100, rng.normal(size=(4, 5))])
    np.testing.assert_allclose(np.linalg.norm(fused[:, :3], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fused[:, 3:], axis=1), 1.0, rtol=1e-6)


def test_zero_rows_stay_zero():
    assert normalize_rows(np.zeros((2, 3))).tolist() == [[0.0] * 3] * 2


@pytest.mark.parametrize(
    ("parts", "weights", "message"),
    [
        ([np.ones((3, 2)), np.ones((4, 2))], None, r"same count.*\(3, 2\).*\(4, 2\)"),
        ([np.ones((3, 2))], [1.0, 2.0], "1 parts but 2 weights"),
        ([np.ones((3, 2))], [-1.0], "non-negative"),
        ([np.ones(3)], None, "2-d"),
        ([], None, "at least one"),
    ],
)
def test_invalid_inputs_are_explained(parts, weights, message):
    with pytest.raises(ValueError, match=message):
        fuse(parts, weights)
