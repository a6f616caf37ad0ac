"""trainer.inputs.to_model_inputs: the one raw-values -> model-inputs conversion (no TensorFlow)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.errors import SchemaError
from monitor.schema import FeatureSpec
from trainer.data import BIKESHARE_FEATURES, load_bikeshare
from trainer.inputs import columns_from_instances, to_model_inputs

SPECS = (
    FeatureSpec("temp", "numeric", "float"),
    FeatureSpec("n", "numeric", "int"),
    FeatureSpec("season", "categorical", "string"),
)


def test_shapes_dtypes_and_missing_strings() -> None:
    out = to_model_inputs({"temp": [1.5, -2, 3.25], "n": [1, 2, 3], "season": ["fall", None, "winter"], "x": [0, 0, 0]}, SPECS)
    assert set(out) == {"temp", "n", "season"}  # extra columns ignored
    assert out["temp"].dtype == np.float32 and out["temp"].shape == (3, 1)
    np.testing.assert_array_equal(out["temp"][:, 0], np.array([1.5, -2.0, 3.25], dtype=np.float32))
    assert out["n"].dtype == np.float32
    assert out["season"].dtype == object and out["season"].shape == (3, 1)
    assert out["season"][:, 0].tolist() == ["fall", "", "winter"]
    assert all(type(v) is str for v in out["season"][:, 0])


def test_numpy_str_and_pandas_inputs_give_plain_python_str() -> None:
    series = pd.Series(["a", None, np.nan, "b"], dtype=object)
    out = to_model_inputs(
        {"temp": pd.Series([1.0, 2.0, 3.0, 4.0]), "n": np.arange(4), "season": series}, SPECS
    )
    assert out["season"][:, 0].tolist() == ["a", "", "", "b"]
    out2 = to_model_inputs({"temp": [1.0], "n": [1], "season": np.array(["x"])}, SPECS)
    assert type(out2["season"][0, 0]) is str


@pytest.mark.parametrize(
    ("bad", "message"),
    [(None, "missing"), (math.nan, "missing"), (math.inf, "finite"), ("3.5", "number"), (True, "number"), ([1], "number")],
)
def test_bad_numeric_value_names_feature_and_instance(bad: object, message: str) -> None:
    with pytest.raises(SchemaError) as err:
        to_model_inputs({"temp": [1.0, 2.0, bad], "n": [1, 2, 3], "season": ["a", "b", "c"]}, SPECS)
    assert (err.value.feature, err.value.instance) == ("temp", 2)
    assert message in str(err.value) and "'temp'" in str(err.value) and "instances[2]" in str(err.value)


@pytest.mark.parametrize("bad", [3, 1.5, b"fall", True, {"a": 1}])
def test_non_string_categorical_is_rejected(bad: object) -> None:
    with pytest.raises(SchemaError) as err:
        to_model_inputs({"temp": [1.0, 2.0], "n": [1, 2], "season": ["a", bad]}, SPECS)
    assert (err.value.feature, err.value.instance) == ("season", 1)


def test_missing_column_and_length_mismatch_are_named() -> None:
    with pytest.raises(SchemaError) as err:
        to_model_inputs({"temp": [1.0], "season": ["a"]}, SPECS)
    assert err.value.feature == "n"
    with pytest.raises(SchemaError) as err:
        to_model_inputs({"temp": [1.0, 2.0], "n": [1, 2], "season": ["a"]}, SPECS)
    assert err.value.feature == "season"
    with pytest.raises(SchemaError) as err:
        to_model_inputs({"temp": "12", "n": [1, 2], "season": ["a"]}, SPECS)
    assert err.value.feature == "temp"


def test_empty_columns_give_empty_arrays() -> None:
    out = to_model_inputs({"temp": [], "n": [], "season": []}, SPECS)
    assert out["temp"].shape == (0, 1) and out["season"].shape == (0, 1)


def test_columns_from_instances_pivots_and_marks_absent_as_none() -> None:
    instances = [{"temp": 1.0, "n": 2, "season": "fall", "extra": 1}, {"temp": 3.0, "n": 4}]
    cols = columns_from_instances(instances, SPECS)
    assert cols == {"temp": [1.0, 3.0], "n": [2, 4], "season": ["fall", None]}
    out = to_model_inputs(cols, SPECS)
    assert out["season"][:, 0].tolist() == ["fall", ""]
    with pytest.raises(SchemaError) as err:
        columns_from_instances([{"temp": 1.0}, [1, 2]], SPECS)
    assert err.value.instance == 1


def test_bikeshare_frame_converts() -> None:
    df = load_bikeshare(Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv").head(500)
    out = to_model_inputs({s.name: df[s.name] for s in BIKESHARE_FEATURES}, BIKESHARE_FEATURES)
    np.testing.assert_allclose(out["temp"][:, 0], df["temp"].to_numpy(), rtol=1e-6)
    assert (out["weekday"][:, 0] == df["weekday"].fillna("").to_numpy()).all()


def test_inputs_module_does_not_import_tensorflow() -> None:
    code = "import sys, trainer.inputs; sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
