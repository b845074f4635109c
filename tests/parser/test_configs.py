"""Tests for parser.configs: schema sync with default.yaml, validation, errors, overrides, dump."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from parser.configs import (
    HISTORY_MODELS,
    SECTION_CLASSES,
    BPMDataConfig,
    Config,
    ConfigError,
    DCMDataConfig,
    HistoryConfig,
    ModelConfig,
    SplitConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    replace_section,
)

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


def write_yaml(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(func, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        func(*args, **kwargs)
    return str(info.value)


# --- schema and defaults ---------------------------------------------------------------------


def test_default_yaml_loads_equal_to_builtin_defaults():
    assert load_config(DEFAULT_YAML) == load_config(None) == Config()


def test_default_yaml_keys_and_values_match_dataclass_defaults():
    raw = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    assert list(raw) == list(SECTION_CLASSES)
    for section, body in config_to_dict(Config()).items():
        assert list(raw[section]) == list(body), section
        assert raw[section] == body, section


def test_every_section_constructs_without_arguments():
    for cls in SECTION_CLASSES.values():
        assert dataclasses.is_dataclass(cls())


def test_dcm_data_config_needs_only_dataset_loc():
    data = DCMDataConfig(dataset_loc="x")
    assert (data.dataset_loc, data.var_id, data.begin, data.shift) == ("x", "Trace2", 3000, 10000)
    assert (data.alarm, data.bwidth_cut) == (48, 900)


def test_lists_become_tuples_and_filter_becomes_pairs():
    beam = BPMDataConfig(features=["A:B"], production_filter={"A:B": 1})
    assert beam.features == ("A:B",)
    assert beam.production_filter == (("A:B", 1.0),)
    assert ModelConfig(conv_filters=[8, 8, 8]).conv_filters == (8, 8, 8)


def test_config_is_frozen_and_hashable():
    config = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train = TrainConfig()
    assert hash(config) == hash(load_config(None))


def test_path_like_is_stored_as_str(tmp_path):
    assert DCMDataConfig(dataset_loc=tmp_path).dataset_loc == str(tmp_path)


# --- unknown keys and sections ----------------------------------------------------------------


def test_misspelt_key_names_file_line_key_path_and_suggestion(tmp_path):
    path = write_yaml(tmp_path, "train:\n  epochs: 3\n  learnig_rate: 0.01\n")
    message = error_of(load_config, path)
    assert f"{path}:3" in message
    assert "train.learnig_rate" in message
    assert "did you mean 'train.learning_rate'?" in message


def test_unknown_section_suggests_closest(tmp_path):
    path = write_yaml(tmp_path, "trian:\n  epochs: 3\n")
    message = error_of(load_config, path)
    assert str(path) in message and "trian" in message
    assert "did you mean 'train'?" in message


def test_key_in_wrong_section_points_to_its_section():
    message = error_of(config_from_dict, {"train": {"dropout": 0.1}})
    assert "did you mean 'model.dropout'?" in message


def test_unrecognisable_key_lists_valid_keys():
    message = error_of(config_from_dict, {"split": {"zzzzzz": 1}})
    assert "split.zzzzzz" in message and "train_fraction" in message


# --- types, ranges, enums ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "epochs", "15", "expected an integer >= 1"),
        ("train", "epochs", True, "expected an integer >= 1"),
        ("train", "epochs", 3.5, "expected an integer >= 1"),
        ("train", "learning_rate", False, "expected a number > 0"),
        ("run", "deterministic", 1, "expected true or false"),
        ("run", "name", 2024, "quote it"),
        ("model", "conv_filters", 16, "expected a list of integers >= 1"),
        ("beam_settings", "production_filter", {"A:B": "high"}, "entry 'A:B': received 'high'"),
        ("data", "max_files", "all", "or null"),
    ],
)
def test_wrong_type_names_key_value_and_allowed(section, key, value, expected):
    message = error_of(config_from_dict, {section: {key: value}})
    assert f"{section}.{key}" in message
    if not isinstance(value, dict):
        assert f"received {value!r}" in message
    assert expected in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("data", "begin", -1),
        ("data", "shift", 0),
        ("data", "alarm", 0),
        ("data", "workers", -2),
        ("split", "train_fraction", 1.0),
        ("split", "val_fraction", 0),
        ("model", "dropout", 1.0),
        ("model", "conv_strides", [4, 0, 4]),
        ("train", "learning_rate", 0),
        ("train", "epochs", 0),
        ("train", "batch_size", 0),
        ("train", "port_base", 80),
        ("train", "port_base", 70000),
        ("train", "gpus_per_node", 0),
        ("threshold", "target_false_alarm_rate", 1.0),
        ("threshold", "pulse_rate_hz", float("nan")),
        ("threshold", "online_step", 0),
    ],
)
def test_out_of_range_value_is_rejected(section, key, value):
    message = error_of(config_from_dict, {section: {key: value}})
    assert f"{section}.{key}" in message


@pytest.mark.parametrize(
    ("section", "key", "allowed"),
    [
        ("split", "method", "'time', 'config_group', 'stratified_random', 'group', 'predefined'"),
        ("scaling", "imbalance", "'class_weight', 'smote', 'undersample', 'none'"),
        ("model", "loss", "'bce', 'focal'"),
        ("train", "distribute", "'none', 'auto', 'mirrored', 'multi_worker'"),
        ("train", "streaming", "'auto', 'true', 'false'"),
        ("threshold", "operating_point",
         "'false_alarms_per_hour', 'target_false_alarm_rate', 'best_f1'"),
    ],
)
def test_bad_enum_lists_allowed_values(section, key, allowed):
    message = error_of(config_from_dict, {section: {key: "bogus"}})
    assert f"{section}.{key}: received 'bogus'" in message
    assert allowed in message


def test_fractions_must_leave_a_test_part():
    with pytest.raises(ConfigError, match="below 1"):
        SplitConfig(train_fraction=0.8, val_fraction=0.2)


def test_conv_lists_must_have_equal_lengths():
    with pytest.raises(ConfigError, match="one item per Conv1D block"):
        ModelConfig(conv_filters=(8, 16))


def test_python_construction_is_validated():
    with pytest.raises(ConfigError, match=r"train\.epochs: received 0"):
        TrainConfig(epochs=0)


def test_all_problems_are_reported_together(tmp_path):
    path = write_yaml(tmp_path, "train:\n  epochs: x\n  batch_size: 0\nmodel:\n  lossy: bce\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = {p.key for p in info.value.problems}
    assert keys == {"train.epochs", "train.batch_size", "model.lossy"}
    assert isinstance(info.value, ValueError)


def test_int_accepted_for_float_and_integral_float_for_int():
    config = config_from_dict({"train": {"learning_rate": 1, "epochs": 3.0}})
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.train.epochs == 3 and isinstance(config.train.epochs, int)


def test_streaming_accepts_yaml_bools():
    assert config_from_dict({"train": {"streaming": True}}).train.streaming == "true"
    assert config_from_dict({"train": {"streaming": False}}).train.streaming == "false"


# --- files ------------------------------------------------------------------------------------


def test_partial_yaml_is_merged_over_defaults(tmp_path):
    path = write_yaml(tmp_path, "train:\n  epochs: 2\nmodel:\n")
    config = load_config(path)
    assert config.train.epochs == 2
    assert config.train.batch_size == TrainConfig().batch_size
    assert config.model == ModelConfig()


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write_yaml(tmp_path, "# nothing\n")) == Config()


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    message = error_of(load_config, missing)
    assert str(missing) in message and "cannot read" in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = write_yaml(tmp_path, "train:\n  epochs: 3\n  batch_size: [1,\n")
    message = error_of(load_config, path)
    assert message.startswith(f"{path}:4: invalid YAML")


def test_top_level_and_section_must_be_mappings(tmp_path):
    assert "top level" in error_of(load_config, write_yaml(tmp_path, "- a\n- b\n"))
    assert "train: received 5" in error_of(config_from_dict, {"train": 5})


def test_duplicate_section_is_reported(tmp_path):
    path = write_yaml(tmp_path, "train:\n  epochs: 3\ntrain:\n  batch_size: 8\n")
    message = error_of(load_config, path)
    assert f"{path}:3: train: given twice (first at line 1)" in message


# --- overrides --------------------------------------------------------------------------------


def test_overrides_parse_yaml_values(tmp_path):
    path = write_yaml(tmp_path, "train:\n  epochs: 2\n")
    config = load_config(path, [
        "train.epochs=3",
        "model.conv_filters=[8, 16, 16]",
        "data.cache_dir=null",
        "train.learning_rate=1",
        "run.name=quick",
    ])
    assert config.train.epochs == 3
    assert config.model.conv_filters == (8, 16, 16)
    assert config.data.cache_dir is None
    assert config.train.learning_rate == 1.0
    assert config.run.name == "quick"


@pytest.mark.parametrize("override", ["train.epochs", "epochs=3", "model.a.b=1", ".epochs=3"])
def test_malformed_override_is_named(override):
    message = error_of(load_config, None, [override])
    assert f"override {override!r}" in message and "section.key=value" in message


def test_unknown_override_key_suggests_closest():
    message = error_of(load_config, None, ["train.learnig_rate=0.1"])
    assert "override 'train.learnig_rate=0.1'" in message
    assert "did you mean 'train.learning_rate'?" in message


def test_override_with_bad_value_names_override():
    message = error_of(load_config, None, ["train.epochs=3.5"])
    assert "override 'train.epochs=3.5': train.epochs: received 3.5" in message
    assert "cannot parse" in error_of(load_config, None, ["train.epochs=[1,"])


def test_overrides_must_be_a_sequence_not_a_string():
    with pytest.raises(TypeError, match="wrap it in a list"):
        load_config(None, "train.epochs=3")


# --- dump and round trip ----------------------------------------------------------------------


def test_dump_and_load_round_trip(tmp_path):
    config = load_config(None, [
        "train.epochs=4",
        "train.streaming=true",
        "model.conv_filters=[8, 8, 8]",
        "data.max_files=5",
        "beam_settings.production_filter={'X:Y': 3}",
    ])
    text = dump_config(config)
    assert list(yaml.safe_load(text)) == list(SECTION_CLASSES)
    assert load_config(write_yaml(tmp_path, text)) == config
    assert config_from_dict(yaml.safe_load(text)) == config


def test_config_to_dict_is_plain_yaml_data():
    plain = config_to_dict(Config())
    assert plain["model"]["conv_filters"] == [16, 32, 32]
    assert plain["beam_settings"]["production_filter"] == {
        "ICS_Tim:Gate_BeamOn:RR": 59.9,
        "ICS_Tim:Chop_Flavor1:BeamOn": 850,
    }
    yaml.safe_dump(plain)  # raises on anything that is not plain data


# --- replace_section --------------------------------------------------------------------------


def test_replace_section_changes_one_key_and_validates():
    config = replace_section(Config(), "train", epochs=2)
    assert config.train.epochs == 2 and config.model == ModelConfig()
    with pytest.raises(ConfigError, match="train.epochs"):
        replace_section(Config(), "train", epochs=-1)
    with pytest.raises(ConfigError, match="did you mean 'train.learning_rate'"):
        replace_section(Config(), "train", learnig_rate=0.1)
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        replace_section(Config(), "trian", epochs=2)


# --- moved keys -------------------------------------------------------------------------------


def test_old_scaling_per_trace_loads_as_model_per_trace_with_a_warning(tmp_path):
    path = write_yaml(tmp_path, "scaling:\n  per_trace: true\n")
    with pytest.warns(FutureWarning, match=r"scaling\.per_trace is deprecated.*model\.per_trace"):
        config = load_config(path)
    assert config.model.per_trace is True
    with pytest.warns(FutureWarning):
        assert load_config(None, ["scaling.per_trace=true"]).model.per_trace is True


def test_old_and_new_per_trace_must_agree():
    message = error_of(config_from_dict,
                       {"scaling": {"per_trace": True}, "model": {"per_trace": False}})
    assert "scaling.per_trace" in message and "give only model.per_trace" in message


def test_reference_model_keys_are_validated():
    assert "model.contrastive_margin" in error_of(config_from_dict,
                                                  {"model": {"contrastive_margin": 2.5}})
    assert "model.siamese_filters" in error_of(config_from_dict,
                                               {"model": {"siamese_filters": [16, 0]}})
    message = error_of(config_from_dict, {"model": {"reference_reduce": "max"}})
    assert "'median', 'mean'" in message
    assert ModelConfig(loss="contrastive").loss == "contrastive"


# --------------------------------------------------------------------------------------------
# history: checked against the model that reads it and the reference rule beside it

HISTORY_ON = ["model.name=sns_history_siamese", "history.count=3", "reference.own_file=false"]


def test_history_is_off_by_default_and_on_with_its_model():
    assert load_config(DEFAULT_YAML).history.count == 0
    config = load_config(DEFAULT_YAML, HISTORY_ON)
    assert config.history.count == 3 and config.model.name in HISTORY_MODELS


@pytest.mark.parametrize("overrides, key, words", [
    (["history.count=2"], "history.count", "reads no history"),
    (["model.name=sns_history_siamese"], "history.count", "expected 1 or more"),
    (HISTORY_ON[:2], "reference.own_file", "expected false"),
    (HISTORY_ON + ["reference.count=0"], "reference.count", "expected 1 or more"),
    (HISTORY_ON + ["data.source=npz"], "history.count", "sns_dcm"),
])
def test_history_mismatch_is_one_line_naming_the_key(overrides, key, words):
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_YAML, overrides)
    message = str(info.value)
    assert "\n" not in message and f"{key}:" in message and words in message


def test_history_checks_apply_to_configs_built_in_python():
    with pytest.raises(ConfigError, match="history.count"):
        Config(history=HistoryConfig(count=1))
    with pytest.raises(ConfigError, match="history.count"):
        HistoryConfig(count=-1)
