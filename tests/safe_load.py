"""Loads a saved model in safe mode in a fresh Python process that never imports regsearch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def load_without_regsearch(path: Path, expression: str) -> str:
    """Prints ``expression`` (about the loaded model ``m``) from a fresh process; returns its last line.

    The process asserts that regsearch was never imported, so the model needs
    nothing but built-in Keras objects.
    """
    script = (
        "import sys, keras\n"
        f"m = keras.saving.load_model({str(path)!r}, safe_mode=True)\n"
        "assert 'regsearch' not in sys.modules\n"
        f"print({expression})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]
