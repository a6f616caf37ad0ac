"""trainer.hparams.HParams: validation and the JSON round trip recorded in bundles."""

from __future__ import annotations

import json

import pytest

from monitor.errors import ConfigError
from trainer.hparams import HParams


def test_round_trip_through_json() -> None:
    hp = HParams(hidden_units=(16,), crosses=(("hr", "holiday"),), log_target=False)
    again = HParams.from_dict(json.loads(json.dumps(hp.to_dict())))
    assert again == hp
    assert isinstance(again.hidden_units, tuple) and isinstance(again.crosses[0], tuple)


def test_from_dict_none_gives_defaults_and_replace_validates() -> None:
    assert HParams.from_dict(None) == HParams()
    assert HParams().replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError) as err:
        HParams().replace(epochs=0)
    assert err.value.field == "hparams.epochs"


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        HParams.from_dict({"epochs": 3, "learnig_rate": 0.1})
    assert err.value.field == "hparams.learnig_rate"


@pytest.mark.parametrize(
    ("field", "value"),
    [("hidden_units", (0,)), ("embedding_dim", 0), ("num_buckets", 1), ("dropout", 1.0), ("learning_rate", 0.0),
     ("batch_size", 0), ("patience", -1), ("crosses", (("hr",),))],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        HParams.from_dict({field: value})
    assert err.value.field == f"hparams.{field}"
