"""Fast refusals (issue 25.9): bad files and backends get one line and exit 2 before TensorFlow or JAX is imported.

Every case runs in one fresh process (TensorFlow is not imported there first,
as it is in this one), which then says which of TensorFlow, Keras and JAX it
imported: none may be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SEARCH = """\
description = "a search whose files are the ones under test"

[data]
{data}

[model]
{model}

[space.regularizer]
kinds = ["l2"]
strengths = [1e-2, 1e-3]

[training]
epochs = 2
"""
MOONS = 'dataset = "moons"\ntrain_size = 30'
MLP = 'hypermodel = "RegularizedMLP"\nhidden = [4]'
GOOD_SEARCH = SEARCH.format(data=MOONS, model=MLP)
GOOD_CSV = "x1,x2,y\n" + "".join(f"{i / 10},{(i * 7) % 10 / 10},{i % 2}\n" for i in range(20))

# What each kind of file holds in each case (None: a folder of that name, or no file at all).
TEXTS = {
    "search": GOOD_SEARCH.replace("a search", "a café search"),
    "data": GOOD_CSV.replace("x1,", "température,"),
    "model": '{"class_name": "Sequential", "note": "café"}',
}
CONTENTS = {
    "empty": lambda kind: b"",
    "binary garbage": lambda kind: bytes((i * 167 + 13) % 256 for i in range(2048)),
    "latin-1 text": lambda kind: TEXTS[kind].encode("latin-1"),
    "UTF-16 with BOM": lambda kind: TEXTS[kind].encode("utf-16"),
    "a folder": None,
    "missing": None,
}
# The file of each kind, and the search file that hands it over.
FILES = {
    "search": ("bad.toml", None),
    "data": ("data.csv", SEARCH.format(data='file = "data.csv"\ntarget = "y"', model=MLP)),
    "model": ("model.keras", SEARCH.format(data=MOONS, model='file = "model.keras"')),
}
# Where the one line must point: the setting each kind of file is.
SETTING = {"search": "'search' must be", "data": "'data.file' must be", "model": "'model.file' must be"}
CASES = [(kind, content) for kind in FILES for content in CONTENTS]
# Search files a user gets wrong in other ways, refused by the schema alone.
BAD_SEARCHES = {
    "unknown key": (GOOD_SEARCH.replace("train_size", "train_sise"), "'data.train_sise' must be a known key"),
    "bad value": (GOOD_SEARCH.replace("epochs = 2", "epochs = 0"), "'training.epochs' must be an integer >= 1"),
    "unknown model key": (GOOD_SEARCH.replace("hidden = [4]", "hiden = [4]"),
                          "'model.hiden' must be a known key of [model] (nearest: 'hidden')"),
    "negative strength": (GOOD_SEARCH.replace("1e-3]", "-1e-3]"), "'space.regularizer.strengths' must be positive"),
    "malformed TOML": (GOOD_SEARCH.replace("epochs = 2", "epochs = = 2"), "must be valid TOML"),
    # issue 26: nested cross-validation and a split per seed
    "outer folds without nested": (GOOD_SEARCH + '[evaluation]\nprotocol = "kfold"\nouter_folds = 3\n',
                                   "'evaluation.outer_folds' must be given only with protocol 'nested'; got 3."),
    "one outer fold": (GOOD_SEARCH + '[evaluation]\nprotocol = "nested"\nouter_folds = 1\n',
                       "'evaluation.outer_folds' must be an integer >= 2; got 1."),
    "outer folds above the smallest class": (GOOD_SEARCH + '[evaluation]\nprotocol = "nested"\nouter_folds = 15\n',
                                             "'evaluation.outer_folds' must be an integer from 2 to 14 (the training rows of the smallest class); got 15."),
    "inner folds above an outer fold's class": (
        GOOD_SEARCH + '[evaluation]\nprotocol = "nested"\nouter_folds = 3\nfolds = 11\n',
        "'evaluation.folds' must be an integer from 2 to 9 (the rows of the smallest class in an outer fold's "
        "training rows)"),
    "nested with a time limit": (GOOD_SEARCH + '[search]\ntime_limit = 60\n[evaluation]\nprotocol = "nested"\n',
                                 "'search.time_limit' must be left out for protocol 'nested'"),
    "nested with rungs": (GOOD_SEARCH + '[search]\nstrategy = "hyperband"\n[evaluation]\nprotocol = "nested"\n',
                          "'evaluation.protocol' must be 'holdout' or 'tutorial' for strategy 'hyperband'"),
    "split_per_seed not a boolean": (GOOD_SEARCH + "[evaluation]\nsplit_per_seed = 1\n",
                                     "'evaluation.split_per_seed' must be true or false; got 1."),
    "split_per_seed with tutorial": (GOOD_SEARCH + '[evaluation]\nprotocol = "tutorial"\nsplit_per_seed = true\n',
                                     "'evaluation.split_per_seed' must be given only with protocol 'holdout' or "
                                     "'kfold' or 'nested'; got True."),
    "split_per_seed with rungs": (GOOD_SEARCH + '[search]\nstrategy = "successive_halving"\n[evaluation]\n'
                                  'split_per_seed = true\n', "'evaluation.split_per_seed' must be false for strategy "
                                  "'successive_halving'"),
}

# Runs every case through regsearch.cli.main in the fresh process; prints one JSON object.
SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    from pathlib import Path
    from regsearch.cli import main

    root = Path(sys.argv[1])
    answers = {}
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(case / (case / "command").read_text()), "--results", str(case / "results")])
        answers[case.name] = {"code": code, "out": out.getvalue(), "err": err.getvalue(),
                              "results": (case / "results").exists()}
    imported = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "jax"})
    print(json.dumps({"answers": answers, "imported": imported}))
""")


def _case_folder(root: Path, name: str) -> Path:
    folder = root / name.replace(" ", "_")
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every case's exit code and output, and the backend modules the process imported."""
    root = tmp_path_factory.mktemp("refusals")
    for kind, content in CASES:
        folder = _case_folder(root, f"{kind}-{content}")
        name, search = FILES[kind]
        if CONTENTS[content] is not None:
            (folder / name).write_bytes(CONTENTS[content](kind))
        elif content == "a folder":
            (folder / name).mkdir()
        if search is not None:
            (folder / "search.toml").write_text(search, encoding="utf-8")
        (folder / "command").write_text("search.toml" if search is not None else name)
    for case, (text, _) in BAD_SEARCHES.items():
        folder = _case_folder(root, case)
        (folder / "bad.toml").write_text(text, encoding="utf-8")
        (folder / "command").write_text("bad.toml")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _one_line_refusal(answer: dict) -> str:
    assert answer["code"] == 2, answer
    assert answer["out"] == ""
    lines = answer["err"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("regsearch: error: "), answer["err"]
    assert not answer["results"], "something was written into --results"
    return lines[0]


@pytest.mark.parametrize(("kind", "content"), CASES, ids=[f"{k} file: {c}" for k, c in CASES])
def test_a_bad_file_is_one_line_exit_2_and_nothing_written(refused: dict, kind: str, content: str) -> None:
    line = _one_line_refusal(refused["answers"][f"{kind}-{content}".replace(" ", "_")])
    assert SETTING[kind] in line
    assert FILES[kind][0] in line  # the file is named


@pytest.mark.parametrize("case", BAD_SEARCHES)
def test_a_bad_search_file_is_refused_by_its_setting(refused: dict, case: str) -> None:
    assert BAD_SEARCHES[case][1] in _one_line_refusal(refused["answers"][case.replace(" ", "_")])


def test_every_refusal_came_before_tensorflow_keras_or_jax_was_imported(refused: dict) -> None:
    assert len(refused["answers"]) == len(CASES) + len(BAD_SEARCHES)
    assert refused["imported"] == []


def test_what_each_encoding_is_called(refused: dict) -> None:
    """The line says what is wrong with the file, not only that it is wrong."""
    answers = refused["answers"]
    assert "(an empty file)" in answers["search-empty"]["err"]
    assert "(UTF-16 text)" in answers["search-UTF-16_with_BOM"]["err"]
    assert "is not UTF-8" in answers["search-latin-1_text"]["err"]
    assert "is not UTF-8" in answers["data-latin-1_text"]["err"]
    assert "(a folder)" in answers["model-a_folder"]["err"]
    assert "(not a zip archive)" in answers["model-binary_garbage"]["err"]


@pytest.mark.parametrize(("variable", "value", "keras_json"), [
    ("KERAS_BACKEND", "torch", None),
    ("KERAS_BACKEND", "numpy", None),
    ("KERAS_HOME", None, {"backend": "openvino"}),
], ids=["KERAS_BACKEND=torch", "KERAS_BACKEND=numpy", "keras.json says openvino"])
def test_a_backend_regsearch_cannot_run_is_one_line_naming_those_it_can(
    tmp_path: Path, variable: str, value: str | None, keras_json: dict | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    if keras_json is not None:
        (tmp_path / "keras.json").write_text(json.dumps(keras_json))
        value = str(tmp_path)
    env[variable] = value
    code = ("import sys\nfrom regsearch.cli import main\ncode = main(sys.argv[1:])\n"
            "assert not any(m.split('.')[0] in {'tensorflow', 'keras', 'jax'} for m in sys.modules)\n"
            "raise SystemExit(code)\n")
    done = subprocess.run([sys.executable, "-c", code, "moons_l2", "--results", str(tmp_path / "results")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "'KERAS_BACKEND' must be one of 'tensorflow', 'jax'" in lines[0]
    assert f"got {(keras_json or {}).get('backend', value)!r}" in lines[0]
    assert not (tmp_path / "results").exists()
