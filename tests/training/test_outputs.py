"""training.outputs: the history figures of a part's split summary."""

from training.outputs import history_summary


def test_history_summary_gives_filled_slots_per_class():
    summary = history_summary([0, 3, 1, 3], [0, 0, 1, 1], slots=3)
    assert summary == {"slots": 3, "none": 1, "mean_filled_normal": 1.5,
                       "mean_filled_errant": 2.0}
    assert history_summary([2], [0], slots=2)["mean_filled_errant"] is None
