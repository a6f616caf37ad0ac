"""Monitor YAML: validation with dotted key paths, resolution feature > model > defaults."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from monitor.compare import TestName
from monitor.config import MonitorConfig, load_monitor_config, parse_monitor_config
from monitor.decide import DEFAULT_FLOORS, Persistence, Policy
from monitor.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "monitor" / "monitor.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_monitor_config(write(tmp_path, text))
    return exc.value


def test_no_file_means_built_in_defaults():
    config = load_monitor_config(None)
    assert config == MonitorConfig()
    assert config.policy_for("any", "thing") == Policy()


def test_empty_file_means_built_in_defaults(tmp_path):
    assert load_monitor_config(write(tmp_path, "# nothing here\n")) == MonitorConfig()


def test_example_file_loads_and_resolves():
    config = load_monitor_config(EXAMPLE)
    hum = config.policy_for("bikeshare", "hum")
    assert hum.floor(TestName.MEAN_SHIFT) == 0.3           # feature
    assert hum.floor(TestName.PSI) == 0.25                 # model
    assert hum.floor(TestName.KS) == 0.1                   # defaults
    assert hum.persistence == Persistence(k=2, n=3)
    assert TestName.WASSERSTEIN in hum.enabled
    assert TestName.VARIANCE_RATIO not in config.policy_for("bikeshare", "windspeed").enabled
    assert TestName.VARIANCE_RATIO not in config.policy_for("bikeshare", "windspeed").enabled
    assert TestName.VARIANCE_RATIO in hum.enabled
    assert config.policy_for("bikeshare", "weathersit").persistence == Persistence(k=1, n=1)
    assert config.policy_for("bikeshare", "hr").floor(TestName.LINF) == 0.05
    other = config.policy_for("another_model", "hum")
    assert other.floor(TestName.MEAN_SHIFT) == 0.2 and other.floor(TestName.PSI) == 0.2


def test_feature_beats_model_beats_defaults(tmp_path):
    config = load_monitor_config(write(tmp_path, """
defaults:
  bh_level: 0.05
  severity_multiplier: 3
  min_count: 200
  floors: {psi: 0.3, ks: 0.2}
  tests: {ks: false, jsd: false}
models:
  m:
    bh_level: 0.02
    floors: {psi: 0.4}
    tests: {ks: true}
    features:
      f:
        bh_level: 0.001
        floors: {psi: 0.5}
        tests: {jsd: true, ks: false}
"""))
    f = config.policy_for("m", "f")
    assert (f.bh_level, f.severity_multiplier, f.min_count) == (0.001, 3.0, 200)
    assert (f.floor("psi"), f.floor("ks"), f.floor("linf")) == (0.5, 0.2, DEFAULT_FLOORS[TestName.LINF])
    assert TestName.JSD in f.enabled and TestName.KS not in f.enabled
    g = config.policy_for("m", "g")
    assert (g.bh_level, g.floor("psi")) == (0.02, 0.4)
    assert TestName.KS in g.enabled and TestName.JSD not in g.enabled
    d = config.policy_for("x", "f")
    assert (d.bh_level, d.floor("psi")) == (0.05, 0.3)
    assert TestName.KS not in d.enabled


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("models: {bikeshare: {features: {temp: {floors: {psi: -0.1}}}}}",
         "models.bikeshare.features.temp.floors.psi", "greater than or equal to 0"),
        ("models: {bikeshare: {features: {temp: {floors: {psi: .nan}}}}}",
         "models.bikeshare.features.temp.floors.psi", "finite"),
        ("models: {bikeshare: {features: {temp: {floors: {psi: '0.3'}}}}}",
         "models.bikeshare.features.temp.floors.psi", "valid number"),
        ("models: {bikeshare: {features: {temp: {floors: {pzi: 0.3}}}}}",
         "models.bikeshare.features.temp.floors.pzi", "'psi'"),
        ("models: {bikeshare: {features: {temp: {flors: {psi: 0.3}}}}}",
         "models.bikeshare.features.temp.flors", "Extra inputs"),
        ("models: {bikeshare: {tests: {ks: maybe}}}", "models.bikeshare.tests.ks", "boolean"),
        ("defaults: {bh_level: 1.5}", "defaults.bh_level", "less than 1"),
        ("defaults: {bh_level: 0}", "defaults.bh_level", "greater than 0"),
        ("defaults: {severity_multiplier: 0.5}", "defaults.severity_multiplier", "greater than or equal to 1"),
        ("defaults: {min_count: 2.5}", "defaults.min_count", "integer"),
        ("defaults: {persistence: {k: 3, n: 2}}", "defaults.persistence", "must not exceed"),
        ("defaults: {persistence: {k: 1}}", "defaults.persistence.n", "Field required"),
        ("models: {m: {features: {f: {features: {}}}}}", "models.m.features.f.features", "Extra inputs"),
        ("version: 2", "version", "1"),
        ("modles: {}", "modles", "Extra inputs"),
    ],
)
def test_errors_name_the_key_path(tmp_path, text, field, words):
    err = error_of(tmp_path, text)
    assert err.field == field
    assert words in str(err)
    assert str(err).startswith(field + ":")


def test_several_errors_say_how_many(tmp_path):
    err = error_of(tmp_path, "defaults: {bh_level: 2, min_count: 0}")
    assert err.field == "defaults.bh_level" and "(and 1 more error)" in str(err)


def test_duplicate_keys_are_refused(tmp_path):
    err = error_of(tmp_path, "models:\n  m:\n    features:\n      temp: {}\n      temp: {}\n")
    assert err.field == "temp" and "duplicate key 'temp' (line 5)" in str(err)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_monitor_config(tmp_path / "absent.yaml")
    assert exc.value.field == "monitor_config" and "absent.yaml" in str(exc.value)
    err = error_of(tmp_path, "defaults: {bh_level: [0.1\n")
    assert err.field == "monitor_config" and "not valid YAML" in str(err)
    err = error_of(tmp_path, "- just\n- a list\n")
    assert "top level must be a mapping" in str(err)


def test_parse_accepts_plain_dicts_and_is_frozen():
    config = parse_monitor_config({"defaults": {"floors": {"ks": 0.15}}})
    assert config.policy_for("m", "f").floor("ks") == 0.15
    with pytest.raises(Exception):
        config.defaults = None  # type: ignore[misc]
    assert math.isclose(config.policy_for("m", "f").floor("variance_ratio"), math.log(1.5))


def test_new_rules_resolve_per_level(tmp_path):
    config = load_monitor_config(write(tmp_path, """
defaults:
  min_samples: {ks: 50}
  large_sample: {fraction: 0.6, tests: [chi_squared]}
  trend: {windows: 16}
models:
  m:
    trend: {fraction: 0.5}
    features:
      f:
        min_samples: {ks: 70}
        large_sample: {enabled: false}
        trend: {enabled: false}
calibration: {window_rows: 500, windows: 200, seed: 3}
"""))
    top = config.policy_for("other", "x")
    assert top.minimum(TestName.KS) == 50 and top.large_sample.fraction == 0.6
    assert top.large_sample.tests == frozenset({TestName.CHI_SQUARED}) and top.trend.windows == 16
    model = config.policy_for("m", "g")
    assert model.trend.fraction == 0.5 and model.trend.windows == 16 and model.minimum(TestName.KS) == 50
    feature = config.policy_for("m", "f")
    assert feature.minimum(TestName.KS) == 70 and not feature.large_sample.enabled and not feature.trend.enabled
    assert (config.calibration.window_rows, config.calibration.windows, config.calibration.seed) == (500, 200, 3)
    assert MonitorConfig().calibration.window_rows == 1000


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("defaults:\n  min_samples: {ks: 0}\n", "defaults.min_samples.ks"),
        ("defaults:\n  large_sample: {fraction: 2}\n", "defaults.large_sample.fraction"),
        ("defaults:\n  trend: {windows: 5}\n", "defaults.trend.windows"),
        ("calibration: {window_rows: 0}\n", "calibration.window_rows"),
    ],
)
def test_new_rules_errors_name_the_key_path(tmp_path, text, field):
    assert error_of(tmp_path, text).field == field


def test_levels_that_only_conflict_together_fail_at_load(tmp_path):
    err = error_of(tmp_path, "defaults:\n  trend: {min_windows: 10}\nmodels:\n  m:\n    trend: {windows: 9}\n")
    assert "models.m" in str(err) and "trend.windows" in str(err)


def test_with_models_checks_levels_together() -> None:
    """A model section stored through the API is checked against the file's defaults: trend.windows
    of 10 is fine alone, but not under defaults whose min_windows is 12."""
    base = parse_monitor_config({"defaults": {"trend": {"min_windows": 12, "windows": 16}}})
    assert base.with_models({"bikeshare": {"trend": {"windows": 14}}}).policy_for("bikeshare", "temp").trend.windows == 14
    with pytest.raises(ConfigError) as err:
        base.with_models({"bikeshare": {"trend": {"windows": 10}}})
    assert err.value.field == "models.bikeshare" and "min_windows" in str(err.value)
    with pytest.raises(ConfigError) as err:
        base.with_models({"bikeshare": {"floors": {"ks": "high"}}})
    assert err.value.field.startswith("models.bikeshare.floors")


def test_policies_are_resolved_once_per_config_and_a_changed_copy_resolves_its_own() -> None:
    base = parse_monitor_config({"models": {"bikeshare": {"floors": {"ks": 0.2}}}})
    first = base.policy_for("bikeshare", "temp")
    assert base.policy_for("bikeshare", "temp") is first  # cached
    changed = base.with_models({"bikeshare": {"floors": {"ks": 0.4}}})
    assert changed.policy_for("bikeshare", "temp").floors["ks"] == 0.4
    assert base.policy_for("bikeshare", "temp").floors["ks"] == 0.2
    assert base.model_copy(update={"models": {}}).policy_for("bikeshare", "temp").floors["ks"] != 0.2
