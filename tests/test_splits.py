"""seg_core.splits: the seeded select/judge halves of val."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.splits import SPLIT_SEED, select_judge_split


def test_halves_are_disjoint_cover_and_are_fixed_by_the_seed():
    select, judge = select_judge_split(400)
    assert len(select) == 200 and len(judge) == 200
    assert np.array_equal(np.sort(np.concatenate([select, judge])), np.arange(400))
    again = select_judge_split(400, SPLIT_SEED)
    assert np.array_equal(select, again[0]) and np.array_equal(judge, again[1])
    assert not np.array_equal(select, select_judge_split(400, SPLIT_SEED + 1)[0])
    assert not np.array_equal(select, np.arange(200))  # shuffled, not the first half of the files
    assert list(select) == sorted(select)


def test_odd_count_and_too_few():
    select, judge = select_judge_split(5)
    assert len(select) == 2 and len(judge) == 3
    with pytest.raises(ValueError):
        select_judge_split(1)
