"""Shared fixtures: one small real training run per test session, reused by every test that needs a bundle."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_path() -> Path:
    return ROOT / "data" / "bike_sharing_hourly.csv"


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory, data_path) -> Path:
    """A models directory holding one real bundle, trained briefly (a few epochs) on 2011."""
    from trainer.train import train

    models_dir = tmp_path_factory.mktemp("models")
    train(data_path=data_path, models_dir=models_dir, model_name="bikeshare", epochs=8, seed=0)
    return models_dir


@pytest.fixture(scope="session")
def trained_bundle(trained_models_dir):
    from monitor.bundle import resolve_bundle

    return resolve_bundle(trained_models_dir, "bikeshare")
