"""iHAS: instance-wise embedding-dimension search with Bernoulli gates (docs/ihas.md).

Three stages: `search_stage` trains the model with gated field embeddings, `cluster` groups
instances by their gate probabilities, and `run_ihas` retrains one model per group behind a
`Router`. `seed_candidates` / `write_seeds` turn the widths into `embedding_dims` seeds.
"""

from autorec.ihas.cluster import Clustering, cluster
from autorec.ihas.gated_embedding import GatedFieldEmbedding, GateSchedule, install_gates
from autorec.ihas.pipeline import IhasRun, SearchStage, run_ihas, search_stage
from autorec.ihas.router import Router
from autorec.ihas.seeds import seed_candidates, validate_seeds, write_seeds
from autorec.ihas.settings import GateSettings, IhasSettings, ihas_settings

__all__ = [
    "Clustering",
    "GateSchedule",
    "GateSettings",
    "GatedFieldEmbedding",
    "IhasRun",
    "IhasSettings",
    "Router",
    "SearchStage",
    "cluster",
    "ihas_settings",
    "install_gates",
    "run_ihas",
    "search_stage",
    "seed_candidates",
    "validate_seeds",
    "write_seeds",
]
