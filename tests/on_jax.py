"""The environment of a test's subprocess that runs on JAX (Keras picks its backend once per process)."""

from __future__ import annotations

import os
from pathlib import Path


def jax_environment(cache: Path) -> dict[str, str]:
    """This process's environment under ``KERAS_BACKEND=jax``, with JAX's compilation cache in ``cache``.

    Every compile is cached, however short, so that a program compiled again with the same HLO is read back:
    an LSTM called eagerly on each member compiles its ``scan`` anew (the jaxpr differs, the HLO does not), as
    does ``model.fit``'s step in each test that builds its own model of one structure. The cache is the test's
    own (a ``tmp_path`` folder): nothing carries over from another test or run, and no result depends on it.
    """
    return {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
            "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
