"""The defaults of a search file (issue 25, item 4): trustworthy for an own search, all in one README table."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from regsearch.definition import known_searches, read_definition
from regsearch.errors import SettingError

README = Path(__file__).resolve().parents[1] / "README.md"
OWN = """\
description = "an own search that leaves the defaults alone"

[data]
dataset = "moons"

[model]
hypermodel = "RegularizedMLP"
"""


def definition_of(tmp_path: Path, text: str):
    path = tmp_path / "own.toml"
    path.write_text(text, encoding="utf-8")
    return read_definition(path)


def test_an_own_search_gets_several_seeds_and_early_stopping_restoring_the_best_weights(tmp_path: Path) -> None:
    definition = definition_of(tmp_path, OWN)
    assert (definition.repeats, definition.epochs) == (5, 200)
    assert definition.early_stopping == {"monitor": "val_loss", "patience": 20, "mode": "auto", "min_delta": 0,
                                         "start_from_epoch": 0, "restore_best_weights": True}
    # The patience follows the epochs, given or not in [early_stopping].
    assert definition_of(tmp_path, OWN + "[training]\nepochs = 1000\n").early_stopping["patience"] == 100
    assert definition_of(tmp_path, OWN + "[training]\nepochs = 5\n[early_stopping]\nmonitor = \"val_accuracy\"\n"
                         ).early_stopping["patience"] == 1


def test_patience_none_turns_early_stopping_off_and_takes_no_other_key(tmp_path: Path) -> None:
    assert definition_of(tmp_path, OWN + '[early_stopping]\npatience = "none"\n').early_stopping is None
    with pytest.raises(SettingError) as error:
        definition_of(tmp_path, OWN + '[early_stopping]\npatience = "none"\nmonitor = "val_loss"\n')
    assert str(error.value).endswith("""'early_stopping' must be only patience = "none" (no early stopping uses no """
                                     "other key); got ['monitor'].")


@pytest.mark.parametrize("name", list(known_searches()))
def test_every_named_search_sets_what_its_results_rely_on(name: str) -> None:
    """A changed default must not change a named search: each sets its epochs, seeds and early stopping."""
    raw = tomllib.loads(known_searches()[name].read_text(encoding="utf-8"))
    assert "epochs" in raw["training"] and "repeats" in raw["search"] and "patience" in raw["early_stopping"]


def schema_keys(tmp_path: Path) -> set[str]:
    """Every key the schema accepts, as ``table.key``, read from its own refusal of an unknown key."""
    base = OWN.replace('[model]\nhypermodel = "RegularizedMLP"\n', "")
    found = {"description", "model.hypermodel"}  # required keys, checked before the others

    def allowed(text: str) -> list[str]:
        with pytest.raises(SettingError) as error:
            definition_of(tmp_path, text)
        return re.findall(r"'([^']+)'", error.value.allowed.split("one of", 1)[1])

    model = '[model]\nhypermodel = "RegularizedMLP"\n'
    cases = {
        "data": base.replace('dataset = "moons"', 'dataset = "moons"\nbogus = 1') + model,
        "data ": base.replace('dataset = "moons"', 'file = "x.csv"\nbogus = 1') + model,
        "model": base + '[model]\nfile = "m.keras"\nbogus = 1\n',
        **{f"model{' ' * k}": base + f'[model]\nhypermodel = "{preset}"\nbogus = 1\n'
           for k, preset in enumerate(("RegularizedMLP", "RegularizedCNN", "RegularizedLSTM"), start=2)},
        **{table: OWN + f"[{table}]\nbogus = 1\n" for table in (
            "space", "space.regularizer", "space.constraint", "space.dropout", "search", "training",
            "early_stopping", "evaluation", "report")},
    }
    for table, text in cases.items():
        found |= {f"{table.strip()}.{key}" for key in allowed(text)}
    return found - {"space.regularizer", "space.constraint", "space.dropout"}  # tables, each listed by its keys


def readme_keys() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Every key of a search file"):]
    section = section[:section.index("\n#")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`([a-z0-9_.]+)`", row.split(" | ")[0])}


def test_the_readme_table_lists_every_key_of_a_search_file(tmp_path: Path) -> None:
    assert readme_keys() == schema_keys(tmp_path)
