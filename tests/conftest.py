"""Test order: the longest tests start first, so that the test workers end together.

The suite's wall time on two workers is at least its longest test and at most about half its total plus the
test that starts last. pytest-xdist hands tests out in collection order (``--maxschedchunk 1`` in pyproject.toml:
one at a time, each worker holding one in hand), so starting the long ones first is greedy longest-first
scheduling: the short tests fill the gaps at the end instead of a long one starting when the other worker is done.
The order changes no test's outcome: none depends on another or on which worker runs it.

Once the tests are collected, every object alive (the imported libraries: TensorFlow, JAX, Keras, pandas...) is
frozen out of the garbage collector's reach: a full collection, which Keras Tuner's stock tuners ask for twice per
trial, then scans what the tests create only. In ``tests/test_engine.py`` and ``tests/test_hypermodels.py`` (one
process, 2026-12-07) the collector's time went from 23.7 s of 126 s to 11.4 s.
"""

from __future__ import annotations

import gc

import pytest

#: Node id prefixes, longest first (seconds on a 2-core machine, as measured when they were listed).
LONGEST_FIRST = (
    "tests/test_searches.py::test_each_code_path_runs_end_to_end_on_jax",  # two processes, about 100 s each
    "tests/test_faults.py::test_a_search_killed_at_20_random_instants",
    "tests/test_distributed.py::test_workers_of_a_killed_chief_exit_and_a_restart_resumes",
    "tests/test_regularize.py::test_every_stock_tuner_runs_regsearch_hypermodels",
    "tests/test_population.py::test_the_population_tests_hold_on_jax",
    "tests/test_predictor.py::test_a_users_searches_save_whole_predictors",  # its module's three searches
    "tests/test_distributed.py::test_a_worker_killed_mid_trial_loses_only_that_trial",
    "tests/test_memory.py::test_resident_memory_stays_flat_across_trials",
    "tests/test_resume.py::test_coarse_to_fine_killed_in_the_fine_phase_resumes",
    "tests/test_nested.py::test_a_nested_search_end_to_end",
    "tests/test_own_model.py::test_own_model_and_csv_run_end_to_end",
    "tests/test_distributed.py::test_a_chief_and_two_workers_run_every_configuration_exactly_once",
    "tests/test_distributed.py::test_ctrl_c_stops_a_worker_and_a_chief",
    "tests/test_searches.py::test_each_search_runs_end_to_end_through_the_cli",
)


def rank(item: pytest.Item) -> int:
    """Position in LONGEST_FIRST; then the other slow tests; then the rest."""
    for position, prefix in enumerate(LONGEST_FIRST):
        if item.nodeid.startswith(prefix):
            return position
    return len(LONGEST_FIRST) + (item.get_closest_marker("slow") is None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=rank)  # stable: within a rank, the files' own order (module fixtures stay shared)


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()  # garbage frozen would never be freed
    gc.freeze()
