"""The environment of a test's subprocess that runs on JAX (Keras picks its backend once per process)."""

from __future__ import annotations

import os
from pathlib import Path


def jax_environment(cache: Path | None = None) -> dict[str, str]:
    """This process's environment under ``KERAS_BACKEND=jax``; with ``cache``, JAX's compilation cache there.

    With the cache, every compile is cached, however short, so that a program compiled again with the same HLO
    is read back: an LSTM called eagerly on each member compiles its ``scan`` anew (the jaxpr differs, the HLO
    does not). Where little repeats, hashing and writing every compile costs more than it saves (the moons
    protocols: 101 s cached, 89 s not), so a test asks for it only where programs repeat. The cache is the
    test's own (a ``tmp_path`` folder): nothing carries over from another test or run, and no result depends on it.
    """
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if cache is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env
