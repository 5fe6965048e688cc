"""Issue 26, point 3: every parameter is checked before anything starts, from its chapter's declared type and
range (src/mcmia_lib/chapters), with one line naming it, what it expects and what it got."""
import typing

import pytest

from mcmia_lib import cli


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))


def refused(capsys, chapter: str, *overrides: tuple[str, str]) -> str:
    """The one line `mcmia run <chapter> --profile smoke -p ...` prints, checked to be one line and exit 2."""
    argv = ["run", chapter, "--profile", "smoke"] + [a for k, v in overrides for a in ("-p", k, v)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mcmia: error: "), err
    return err.strip()


@pytest.mark.parametrize("name,value,message", [
    ("seeds", "[0, 0]", "-p seeds: must not repeat an item, got 0 twice in [0, 0]"),
    ("seeds", "[]", "-p seeds: expected at least one item, got []"),
    ("seeds", "[-1]", "-p seeds[0]: must be >= 0, got -1"),
    ("seeds", "[0.5]", "-p seeds[0]: expected a whole number (e.g. 150), got 0.5 (a number)"),
    ("nn_epochs", "-5", "-p nn_epochs: must be >= 1, got -5"),
    ("nn_epochs", "0", "-p nn_epochs: must be >= 1, got 0"),
    ("lr", ".inf", "-p lr: expected a finite number, got inf"),
    ("lr", ".nan", "-p lr: expected a finite number, got nan"),
    ("epochs", "1000000000", "-p epochs: must be <= 10000 (at most 10,000 epochs), got 1000000000"),
    ("epochs", "true", "-p epochs: expected a whole number (e.g. 150), got True (a boolean)"),
    ("n_target", "70000", "-p n_target: must be <= 60000 (the training images of mnist), got 70000"),
    ("nn_inits", "[default, uniform]", "-p nn_inits[1]: expected one of default, normal, got 'uniform'"),
])
def test_a_bad_value_is_one_line_before_any_kernel(name, value, message, capsys):
    assert refused(capsys, "mnist_lenet5_baseline", (name, value)) == f"mcmia: error: {message}"


def test_nested_values_are_checked_by_their_declared_element_types(capsys):
    assert refused(capsys, "mcmia_cifar10", ("overrides", "{vgg16: {nn_epochs: 0}}")) == (
        "mcmia: error: -p overrides.vgg16.nn_epochs: must be >= 1, got 0")
    assert refused(capsys, "mcmia_cifar10", ("overrides", "{resnet50: {n_target: 10}}")).startswith(
        "mcmia: error: -p overrides: key 'resnet50': expected one of vgg16, mobilenetv2, resnet18")
    assert refused(capsys, "mcmia_cifar10", ("admm_ablation", "{rho: 0.1}")) == (
        "mcmia: error: -p admm_ablation.seeds: missing: the seeds to ablate (e.g. [0])")
    assert refused(capsys, "dp_regularization", ("table_i", "{epsilon: 6.28, eps: 1}")) == (
        "mcmia: error: -p table_i: unknown key 'eps'; expected keys among epsilon, epochs, batch_size, lr, momentum, "
        "curve_subset, nn_epochs, seeds, cnn_width, cnn_compression, lenet_seeds")
    assert refused(capsys, "dp_regularization", ("table_i", "{epsilon: 6.28}")) == (
        "mcmia: error: -p table_i.epochs: missing; expected a whole number (e.g. 150)")
    assert refused(capsys, "sparsity", ("attack", "{hidden: [[30, -1]]}")) == (
        "mcmia: error: -p attack.hidden[0][1]: must be >= 1, got -1")
    assert refused(capsys, "sparsity", ("butterfly", "[{segments: 2, factors: 3, lr: .inf, weight_decay: 0}]")) == (
        "mcmia: error: -p butterfly[0].lr: expected a finite number, got inf")
    assert refused(capsys, "strong_attacks", ("ref_counts", "[1, 3]")).startswith(
        "mcmia: error: -p ref_counts: each must be <= n_models - 2 (2")
    assert refused(capsys, "mcmia_lenet5", ("rates", "[0.4, 1.5, 0.9, 0.9, 0.9]")) == (
        "mcmia: error: -p rates[1]: must be in [0, 1), got 1.5")


def test_counts_that_may_be_zero_accept_zero():
    """dp_regularization's nn_epochs = 0 means "no NN attack" (its profiles use it); the other chapters' NN
    attack must train."""
    assert cli.resolve_params("dp_regularization", "smoke", [("nn_epochs", "0")])["nn_epochs"] == 0


def test_scientific_notation_is_a_number():
    p = cli.resolve_params("mnist_lenet5_baseline", "smoke", [("lr", "1e-3")])
    assert p["lr"] == 0.001 and type(p["lr"]) is float
    assert cli.resolve_params("strong_attacks", "smoke", [("delta", "1E-5")])["delta"] == 1e-5
    assert cli.resolve_params("mcmia_lenet5", "smoke", [("rates", "[4e-1, 0.9, 0.9, 0.9, 0.9]")])["rates"][0] == 0.4
    assert cli.resolve_params("quickstart", "smoke", [("n_target", "300")])["n_target"] == 300  # ints stay ints


def test_a_huge_integer_is_one_line_without_formatting_it(capsys):
    huge = "9" * 102_400  # more digits than Python converts to text (sys.get_int_max_str_digits)
    assert refused(capsys, "mnist_lenet5_baseline", ("epochs", huge)) == (
        "mcmia: error: -p epochs: must be >= 1 and <= 10000 (at most 10,000 epochs), got a whole number of "
        "102,400 digits")
    assert refused(capsys, "mnist_lenet5_baseline", ("lr", huge)) == (
        "mcmia: error: -p lr: expected a finite number, got a whole number of 102,400 digits")
    assert refused(capsys, "mnist_lenet5_baseline", ("seeds", f"[0, {huge}]")).startswith(
        "mcmia: error: -p seeds[1]: must be >= 0 and <= 4294967295")


@pytest.mark.parametrize("name,value", [
    ("epochs", "[" + ", ".join(["1"] * 50_000) + "]"),  # 150 KB
    ("optimizer", "x" * 100_000),
    ("seeds", "[0, " + "1" * 100_000),  # not valid YAML
    ("x" * 100_000, "1"),  # an unknown name
    ("table_i", "{epsilon: [" + ", ".join(["1"] * 50_000) + "]}"),
])
def test_a_long_value_is_cut_in_the_message(name, value, capsys):
    chapter = "dp_regularization" if name == "table_i" else "mnist_lenet5_baseline"
    line = refused(capsys, chapter, (name, value))
    assert "…" in line and len(line) < 400, line


def test_every_profile_of_every_chapter_validates():
    from mcmia_lib import chapters
    for name in cli.chapters():
        for profile in cli.PROFILES:
            p = chapters.validate(name, cli.resolve_params(name, profile))
            assert p == chapters.read(name, profile)
            assert isinstance(p, chapters.params_class(name)) and p.profile == profile


def test_every_notebook_takes_a_profile_and_overrides_only():
    """A notebook's parameters come from its ``Params`` and profile file, never from its own cell."""
    import papermill as pm
    from mcmia_lib import chapters
    assert sorted(chapters.NAMES) == cli.chapters()
    for name in cli.chapters():
        declared = pm.inspect_notebook(str(cli.NOTEBOOKS / f"{name}.ipynb"))
        assert list(declared) == ["profile", "overrides"], name


def test_declared_names_and_sizes_agree_with_the_library():
    from mcmia_lib import chapters, data, inversion, models, train
    from mcmia_lib.chapters import dp_regularization
    assert typing.get_args(chapters.Dataset) == data.DATASETS
    assert typing.get_args(chapters.Model) == tuple(models.MODELS)
    assert typing.get_args(chapters.Optimizer) == train.OPTIMIZERS
    assert typing.get_args(dp_regularization.Layer) == inversion.LAYERS
    assert typing.get_args(chapters.Profile) == cli.PROFILES
    for name, (n_train, n_test, _) in data.EXPECTED.items():
        assert (chapters.TRAIN_SIZE[name], chapters.TEST_SIZE[name]) == (n_train, n_test)
    digits = data.load_dataset("digits")
    assert (chapters.TRAIN_SIZE["digits"], chapters.TEST_SIZE["digits"]) == (len(digits.y_train), len(digits.y_test))


def test_show_cuts_and_never_formats_a_huge_integer():
    from mcmia_lib.chapters import show
    assert show(10 ** 200_000) == "a whole number of about 200,001 digits"
    assert show([1, 10 ** 200_000]).startswith("[1, a whole number of about 200,001 digits")
    assert len(show(list(range(100_000)))) == 80 and show(list(range(100_000))).endswith("…")
    assert show({"a": "b" * 1000}) == "{'a': '" + "b" * 72 + "…"
    assert show([0, 1]) == "[0, 1]"
