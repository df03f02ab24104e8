"""regsearch: find the right regularization for a Keras model with Keras Tuner."""

from regsearch.engine import fit
from regsearch.errors import SettingError

__all__ = ["fit", "SettingError"]
__version__ = "0.1.0"
