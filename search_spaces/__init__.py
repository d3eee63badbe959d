"""The built-in search spaces: each is a plugin like any third-party one.

`autorec.space.builtin_spaces()` names them; `autorec.space.load_space(name, options)` loads one.
"""

from autorec.search_spaces.architecture import ArchitectureCandidate, ArchitectureSpace
from autorec.search_spaces.embedding_dims import EmbeddingDimsCandidate, EmbeddingDimsSpace

__all__ = [
    "ArchitectureCandidate",
    "ArchitectureSpace",
    "EmbeddingDimsCandidate",
    "EmbeddingDimsSpace",
]
