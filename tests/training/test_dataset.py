"""training/dataset.py: the epoch-keyed in-memory pipeline gathers rows by shuffled row number."""

import numpy as np
import tensorflow as tf

from training.dataset import _epoch_keyed


def _rows_shuffled(parts, n, batch_size, seed, epochs):
    """What shuffling the rows themselves gives (the pipeline before it shuffled row numbers)."""
    out = None
    for epoch in range(*epochs):
        one = tf.data.Dataset.from_tensor_slices(parts).shuffle(
            n, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False).batch(batch_size)
        out = one if out is None else out.concatenate(one)
    return out


def test_keyed_epochs_give_the_batches_row_shuffling_gave_and_differ_per_epoch():
    n, batch = 53, 8
    rng = np.random.default_rng(0)
    parts = ({"trace": rng.random((n, 5, 1), dtype=np.float32),
              "settings": rng.random((n, 3), dtype=np.float32)},
             np.arange(n, dtype=np.float32)[:, None], rng.random(n, dtype=np.float32))
    got = list(_epoch_keyed(parts, n, batch, seed=4, epochs=(2, 5)))
    want = list(_rows_shuffled(parts, n, batch, 4, (2, 5)))
    assert len(got) == len(want) == 3 * 7  # 7 batches per epoch, the last one of 5 rows
    for (x, y, w), (x0, y0, w0) in zip(got, want, strict=True):
        np.testing.assert_array_equal(y.numpy(), y0.numpy())
        np.testing.assert_array_equal(x["trace"].numpy(), x0["trace"].numpy())
        np.testing.assert_array_equal(x["settings"].numpy(), x0["settings"].numpy())
        np.testing.assert_array_equal(w.numpy(), w0.numpy())
    orders = [np.concatenate([b[1].numpy().ravel() for b in got[e * 7:(e + 1) * 7]])
              for e in range(3)]
    for order in orders:
        assert sorted(order.astype(int).tolist()) == list(range(n))  # every row once per epoch
    assert not np.array_equal(orders[0], orders[1])
    # A resumed run (epochs 3..4) sees exactly the uninterrupted run's last two epochs.
    resumed = list(_epoch_keyed(parts, n, batch, seed=4, epochs=(3, 5)))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy().ravel() for b in resumed]),
                                  np.concatenate(orders[1:]))
