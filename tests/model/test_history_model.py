"""`sns_history_siamese`: what it reads, what it ignores, and that it refuses to go without."""

import keras
import numpy as np
import pytest

from model import InputSpec, build_model, list_models
from parser.configs import HISTORY_MODELS
from tests.model.helpers import model_config, random_batch

SPEC = InputSpec(trace_length=128, n_channels=1, n_settings=2, n_references=2, n_history=3)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model(model_config(name="sns_history_siamese"), SPEC)


def test_history_models_named_by_the_parser_are_registered():
    assert set(HISTORY_MODELS) <= set(list_models())


def test_garbage_in_a_masked_slot_leaves_the_score_unchanged(model):
    x, _ = random_batch(model, 4)
    x["history_count"] = np.array([[0], [1], [2], [3]], dtype="int32")
    before = model.predict(x, verbose=0)
    garbage = x["history"].copy()
    for row, count in enumerate(x["history_count"][:, 0]):
        garbage[row, : 3 - count] = 1e4 * (row + 1)  # every empty (leading) slot
    after = model.predict({**x, "history": garbage}, verbose=0)
    np.testing.assert_array_equal(after, before)
    # ... while a filled slot is read: the same change there moves the score
    moved = x["history"].copy()
    moved[3, 0] = 1e4
    assert not np.allclose(model.predict({**x, "history": moved}, verbose=0)[3], before[3])


def test_the_history_count_is_read(model):
    x, _ = random_batch(model, 2)
    x["history_count"] = np.array([[3], [3]], dtype="int32")
    full = model.predict(x, verbose=0)
    none = model.predict({**x, "history_count": np.zeros((2, 1), "int32")}, verbose=0)
    assert not np.allclose(full, none)


def test_builder_without_history_or_references_names_the_key():
    config = model_config(name="sns_history_siamese")
    with pytest.raises(ValueError, match="history.count"):
        build_model(config, InputSpec(128, 1, 2, n_references=2))
    with pytest.raises(ValueError, match="reference.count"):
        build_model(config, InputSpec(128, 1, 2, n_history=2))
