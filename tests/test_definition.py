"""Search definitions: where a name resolves, what validation says, and that a definition is data (issue 4, 5.8)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from regsearch import SettingError
from regsearch.definition import PACKAGED_SEARCHES, find_definition, known_searches, load_definition

TINY = """\
description = "tiny"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[training]
epochs = 3
"""


def test_a_name_resolves_to_the_packaged_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_definition("moons_l2") == PACKAGED_SEARCHES / "moons_l2.toml"
    assert load_definition("moons_l2").name == "moons_l2"


def test_a_local_searches_folder_comes_before_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "searches").mkdir()
    (tmp_path / "searches" / "moons_l2.toml").write_text(TINY.replace('"tiny"', '"my own moons_l2"'))
    (tmp_path / "searches" / "mine.toml").write_text(TINY)

    assert load_definition("moons_l2").description == "my own moons_l2"
    assert load_definition("mine").path == Path("searches") / "mine.toml"
    assert set(known_searches()) >= {"mine", "moons_l2", "digits_cnn"}


def test_a_path_to_a_toml_file_works(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(TINY)
    definition = load_definition(str(path))
    assert (definition.name, definition.path, definition.text) == ("elsewhere", path, TINY)


def test_a_missing_path_names_itself(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as raised:
        load_definition(str(tmp_path / "missing.toml"))
    assert str(raised.value) == f"command line: 'search' must be an existing .toml file; got '{tmp_path}/missing.toml'."


def test_errors_carry_the_file_the_key_the_allowed_values_and_what_was_received(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(TINY.replace("epochs", "epocs"))
    with pytest.raises(SettingError) as raised:
        load_definition(path)
    error = raised.value
    assert (error.where, error.setting, error.received) == (str(path), "training.epocs", "epocs")
    assert error.allowed == "a known key of [training] (nearest: 'epochs'): one of 'batch_size', 'epochs'"
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TINY.replace('[data]\ndataset = "moons"\ntrain_size = 30\n', ""),
         "'[data]' must be a table (it is required); got nothing."),
        (TINY.replace('description = "tiny"\n', ""), "'description' must be given (it is required); got nothing."),
        (TINY.replace("[model]", "[search]\nstrategy = \"coarse_to_fine\"\n\n[model]"),
         "'search.strategy' must be 'grid' or 'bayesian' unless [space.regularizer] has several strengths; "
         "got 'coarse_to_fine'."),
        (TINY + '\n[early_stopping]\npatience = 2.5\n', "'early_stopping.patience' must be an integer >= 0; got 2.5."),
        (TINY + '\n[search]\nrepeats = 0\n', "'search.repeats' must be an integer >= 1; got 0."),
        (TINY + '\n[search]\nobjective = "accuracy"\n', "'search.objective' must be one of 'test_accuracy'"),
    ],
    ids=["missing table", "missing key", "coarse_to_fine without a grid", "fractional patience", "repeats 0",
         "unknown objective"],
)
def test_more_validation_messages(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SettingError) as raised:
        load_definition(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_with_epochs_changes_only_the_epochs(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    definition = load_definition(path)
    quick = definition.with_epochs(1)
    assert quick.epochs == 1 and quick.text == definition.text and definition.epochs == 3


# --- a definition is data (5.8) ------------------------------------------------------------------


def test_python_in_a_definition_is_invalid_toml_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "code.toml"
    path.write_text(f"import os\nos.system('touch {marker}')\n")
    with pytest.raises(SettingError) as raised:
        load_definition(path)
    assert str(raised.value) == (f"{path}: 'line 1, column 8' must be valid TOML (key = value, [table], \"strings\", "
                                 "[lists]); got \"Expected '=' after a key in a key/value pair\".")
    assert not marker.exists()


def test_python_inside_toml_strings_stays_a_string(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"__import__('os').system('touch {marker}')"
    path = tmp_path / "strings.toml"
    path.write_text(TINY.replace('"tiny"', f'"{code}"'))
    assert load_definition(path).description == code

    path.write_text(TINY.replace('"RegularizedMLP"', '"__class__"'))
    with pytest.raises(SettingError, match=r"'model.hypermodel' must be one of 'RegularizedMLP', "
                                           r"'RegularizedCNN', 'RegularizedLSTM'; got '__class__'"):
        load_definition(path)
    assert not marker.exists()


SOURCES = Path(PACKAGED_SEARCHES).parent


def source_lines(pattern: str) -> list[str]:
    found = []
    for path in sorted(SOURCES.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(pattern, line) and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(SOURCES)}:{number}: {line.strip()}")
    return found


def test_the_package_never_executes_or_unpickles_input() -> None:
    assert source_lines(r"\b(eval|exec)\(|pickle\.load|marshal\.load|yaml\.load\(|runpy\.") == []
    # definitions are read with tomllib only
    assert [line for line in source_lines(r"\btoml\w*\.load") if "tomllib.load" not in line] == []


def test_every_model_the_package_loads_is_loaded_in_safe_mode() -> None:
    loads = source_lines(r"(saving|models)\.load_model\(|\bload_model\(")
    # Keras Tuner's tuner.load_model rebuilds the model from code and loads weights only.
    unsafe = [line for line in loads if "safe_mode=True" not in line and "tuner.load_model(" not in line]
    assert unsafe == []


@pytest.mark.parametrize(("strategy", "line", "expected"),
                         [("grid", "", 1_000_000), ("grid", "batch = 3\n", 3), ("bayesian", "", 8),
                          ("bayesian", "batch = 2\n", 2)])
def test_search_batch_reaches_the_tuner(tmp_path: Path, strategy: str, line: str, expected: int) -> None:
    from regsearch.search import _make_tuner

    path = tmp_path / "batch.toml"
    path.write_text(TINY.replace("[model]", f'[search]\nstrategy = "{strategy}"\n{line}\n[model]'))
    definition = load_definition(path)
    tuner = _make_tuner(definition, _hypermodel(definition), strategy, tmp_path / "tuner", None, {})
    assert tuner.batch == expected


def _hypermodel(definition):
    from regsearch.definition.build import load_data, make_hypermodel

    return make_hypermodel(definition, load_data(definition))


def test_search_batch_must_be_a_positive_integer(tmp_path: Path) -> None:
    path = tmp_path / "batch.toml"
    path.write_text(TINY.replace("[model]", "[search]\nbatch = 0\n\n[model]"))
    with pytest.raises(SettingError, match=r"'search.batch' must be an integer >= 1; got 0\."):
        load_definition(path)


def test_the_model_keys_of_the_schema_are_the_hypermodels_constructor_arguments() -> None:
    """schema.MODEL_KEYS is written out (a search file is checked without Keras); the constructors are the truth."""
    import inspect

    import regsearch.hypermodels as hypermodels
    from regsearch.definition.schema import HYPERMODELS, MODEL_KEYS, SPACE_ARGUMENTS

    assert set(MODEL_KEYS) == set(HYPERMODELS)
    for name in HYPERMODELS:
        keys: set[str] = set()
        for klass in getattr(hypermodels, name).__mro__:
            if "__init__" in vars(klass):
                keys |= {parameter for parameter, p in inspect.signature(klass.__init__).parameters.items()
                         if parameter != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        assert MODEL_KEYS[name] == keys - {"name", "tunable"} - SPACE_ARGUMENTS, name
