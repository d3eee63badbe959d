"""autorec: agent-driven AutoML and autotuning for recommender models."""

from autorec.errors import AutorecError

__version__ = "0.1.0"
__all__ = ["AutorecError", "__version__"]
