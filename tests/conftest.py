import os

import pytest

os.environ.setdefault("MCMIA_QUIET", "1")


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    """An empty results store and weights folder for one test."""
    monkeypatch.setenv("MCMIA_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "weights"))
    from mcmia_lib.store import Store
    return Store(tmp_path / "store")
