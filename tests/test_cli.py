import json

import pytest

from mcmia_lib import cli


def test_profiles_only_use_declared_parameters():
    for name in cli.chapters():
        declared = cli.notebook_parameters(name)
        for profile in cli.PROFILES:
            params = cli.resolve_params(name, profile)
            assert set(params) <= set(declared), (name, profile)


def test_misspelt_parameter_is_refused_with_valid_names():
    with pytest.raises(cli.UsageError) as err:
        cli.resolve_params("mnist_lenet5_baseline", "smoke", [("epohcs", "3")])
    msg = str(err.value)
    assert "epohcs" in msg and "epochs" in msg and "valid names" in msg


def test_override_is_parsed_as_yaml():
    p = cli.resolve_params("mnist_lenet5_baseline", "smoke", [("seeds", "[0, 1]"), ("lr", "0.01")])
    assert p["seeds"] == [0, 1] and p["lr"] == 0.01 and p["profile"] == "smoke"


def test_unknown_notebook_and_profile():
    with pytest.raises(cli.UsageError, match="available"):
        cli.resolve_params("mnist_lenet", "smoke")
    with pytest.raises(cli.UsageError, match="unknown profile"):
        cli.resolve_params("quickstart", "gpu")


def test_main_exit_code_and_message(capsys):
    assert cli.main(["run", "quickstart", "--profile", "smoke", "-p", "epoch", "3"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_source_hash_tracks_parameters():
    p = cli.resolve_params("quickstart", "smoke")
    assert cli.source_hash("quickstart", p) != cli.source_hash("quickstart", {**p, "epochs": 1})


def test_failed_notebooks_detected(tmp_path):
    ok = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "hi"}], "metadata": {}}]}
    bad = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "error", "ename": "E"}], "metadata": {}}]}
    (tmp_path / "ok.ipynb").write_text(json.dumps(ok))
    (tmp_path / "bad.ipynb").write_text(json.dumps(bad))
    assert cli.failed_notebooks(sorted(tmp_path.glob("*.ipynb"))) == [str(tmp_path / "bad.ipynb")]


def test_committed_notebooks_ran_without_error():
    assert cli.failed_notebooks(cli.NOTEBOOKS.glob("*.ipynb")) == []
    assert cli.failed_notebooks(cli.BOOK.glob("*.ipynb")) == []


def test_book_chapters_are_executed_at_the_book_profile_and_current():
    """The published chapters must come from the cpu profile with the committed notebook and parameters."""
    assert {"quickstart", "mnist_lenet5_baseline"} <= set(cli.book_chapters())
    for name in cli.book_chapters():
        meta = json.loads((cli.BOOK / f"{name}.ipynb").read_text())["metadata"]["mcmia"]
        assert meta["profile"] == cli.BOOK_PROFILE, name
        assert cli.is_current(name, cli.BOOK_PROFILE), f"{name}: rerun `mcmia run {name} --profile cpu`"
