"""The evaluation summary: mean return and its standard error, against hand-computed values."""

import numpy as np
import pytest

from reppo_fast.algorithm import eval_result


def test_mean_and_standard_error_by_hand():
    # mean 2.5; sample variance ((1.5^2 + 0.5^2) * 2) / 3 = 5/3; stderr sqrt(5/3) / sqrt(4) = 0.645497
    result = eval_result(np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    assert result.mean == 2.5
    assert result.stderr == pytest.approx(0.6454972243679028, rel=1e-12)


def test_one_env_has_no_spread_to_estimate():
    assert eval_result(np.array([7.0])) == (7.0, 0.0)
