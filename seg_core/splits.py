"""The seeded select/judge halves of val: pick checkpoints on one, judge the shipped model on the other.

A run that picks its best epoch on the same pairs it is then judged on reports an optimistic
figure; halving val with a fixed seed keeps the judge half unseen by every selection. The halves
are indices into the split in its natural file order (``seg_core.data.list_pairs``), so a folder
and its pack give the same halves.
"""

from __future__ import annotations

import numpy as np

#: The seed of the halves; changing it would let past selections see the judge half.
SPLIT_SEED = 33


def select_judge_split(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the select half (``n // 2`` pairs) and the judge half (the rest) of ``n`` pairs."""
    if n < 2:
        raise ValueError(f"cannot halve {n} pairs")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])
