"""TF Serving's columnar request format: same predictions as rows, clear 400s, never a 500."""

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from monitor.errors import SchemaError
from monitor.schema import FeatureSpec
from monitor.settings import Settings
from serving.app import create_app
from serving.models import ModelRegistry
from serving.publisher import PredictionLogger
from serving.validation import InputFormat, parse_predict_request, rows_from_columns

SPECS = (
    FeatureSpec("temp", "numeric", "float"),
    FeatureSpec("count", "numeric", "int"),
    FeatureSpec("season", "categorical", "string"),
)
COLUMNS = {"temp": [14.5, -2, 0.0], "count": [3, 4.0, 0], "season": ["spring", None, ""]}
ROWS = [
    {"temp": 14.5, "count": 3, "season": "spring"},
    {"temp": -2, "count": 4.0, "season": None},
    {"temp": 0.0, "count": 0, "season": ""},
]


def _columns(rows):
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_columns_are_pivoted_into_the_rows_a_row_request_would_give():
    columnar = parse_predict_request(orjson.dumps({"inputs": COLUMNS, "signature_name": "serving_default"}), SPECS)
    rows = parse_predict_request(orjson.dumps({"instances": ROWS}), SPECS)
    assert columnar.instances == rows.instances == tuple(ROWS)
    assert (columnar.format, rows.format) == (InputFormat.COLUMNAR, InputFormat.ROW)
    assert rows_from_columns({"x": [1], "y": ["a"]}) == ({"x": 1, "y": "a"},)
    with pytest.raises(SchemaError, match="at least one feature") as info:
        rows_from_columns({})  # without specs, the shape is all there is to check
    assert info.value.feature == "inputs"


@pytest.mark.parametrize(
    "inputs, field, instance, message",
    [
        ({**COLUMNS, "colour": ["r", "g", "b"]}, "colour", None, "unknown feature"),
        ({"temp": [1.0], "season": ["a"]}, "count", None, "missing feature column"),
        ({**COLUMNS, "season": ["a", "b"]}, "season", None, "has 2 values but column 'temp' has 3"),
        ({**COLUMNS, "count": 3}, "count", None, "must be a list of values"),
        ({"temp": [], "count": [], "season": []}, "inputs", None, "must not be empty"),
        ({**COLUMNS, "temp": [1.0, "warm", 2.0]}, "temp", 1, "needs a number, got a string"),
        ({**COLUMNS, "count": [1, 2, 2.5]}, "count", 2, "whole number"),
        ({**COLUMNS, "season": ["a", 3, "b"]}, "season", 1, "needs a string"),
        ([[1.0, 2, "a"]], "inputs", None, "named feature columns"),
        ({}, "temp", None, "missing feature column"),
    ],
)
def test_bad_columns_name_the_feature_and_the_row(inputs, field, instance, message):
    with pytest.raises(SchemaError, match=message) as info:
        parse_predict_request(orjson.dumps({"inputs": inputs}), SPECS)
    assert (info.value.feature, info.value.instance) == (field, instance)


def test_the_instance_limit_holds_for_columns_too():
    with pytest.raises(SchemaError, match="limit of 2") as info:
        parse_predict_request(orjson.dumps({"inputs": COLUMNS}), SPECS, max_instances=2)
    assert info.value.feature == "inputs"


# -- the app --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(models_dir):
    logger = PredictionLogger(Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    with TestClient(create_app(Settings(), ModelRegistry(models_dir), logger)) as c:
        yield c
    logger.close(timeout=0)


def test_columnar_answers_outputs_equal_to_the_row_predictions(client, raw_rows):
    rows = raw_rows[:25] + raw_rows[-2:]  # with a missing weekday and weathersit
    by_rows = client.post("/v1/models/bikeshare:predict", json={"instances": rows})
    by_columns = client.post("/v1/models/bikeshare:predict", json={"inputs": _columns(rows)})
    assert by_rows.status_code == by_columns.status_code == 200, by_columns.text
    body = by_columns.json()
    assert set(body) == {"outputs", "model_version"}
    assert body["model_version"] == by_rows.json()["model_version"] == by_columns.headers["x-model-version"]
    np.testing.assert_array_equal(body["outputs"], by_rows.json()["predictions"])
    before = client.app.state.logger.stats().enqueued
    client.post("/v1/models/bikeshare:predict", json={"inputs": _columns(rows)})
    assert client.app.state.logger.stats().enqueued == before + 1


@pytest.mark.parametrize(
    "content, field",
    [
        (b'{"inputs": {"temp": [1.0]}}', "atemp"),
        (b'{"inputs": [[1.0, 2.0]]}', "inputs"),
        (b'{"inputs": {"temp": 1.0}}', "atemp"),
        (b'{"inputs": null}', "inputs"),
        (b'{"inputs": {}, "instances": []}', "inputs"),
        (b'{"outputs": [1]}', "outputs"),
        (b'{"inputs": {"temp": [1e999]}}', "body"),
        (b'"inputs"', "body"),
    ],
)
def test_bad_columnar_bodies_are_400_naming_the_field(client, content, field):
    before = client.app.state.logger.stats().enqueued
    r = client.post("/v1/models/bikeshare:predict", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and "error" in r.json()
    assert client.app.state.logger.stats().enqueued == before


def test_a_wrong_value_in_a_column_names_feature_and_row(client, raw_rows):
    columns = _columns(raw_rows[:4])
    columns["hum"][2] = "humid"
    r = client.post("/v1/models/bikeshare:predict", json={"inputs": columns})
    assert r.status_code == 400
    assert (r.json()["field"], r.json()["instance"]) == ("hum", 2)
