"""RecSAE as a review tool: name the latents of a sparse autoencoder trained on the hidden
states of an archived sequential model (`autorec explain CANDIDATE_ID`; docs/review.md)."""

from autorec.explain.candidate import ExplainConfig, Explanation, explain_candidate, explain_config
from autorec.explain.errors import ExplainError
from autorec.explain.naming import NamedLatent, catalog_labels, name_latents
from autorec.explain.sae import SAEConfig, SparseAutoencoder, train_sae

__all__ = [
    "ExplainConfig", "ExplainError", "Explanation", "NamedLatent", "SAEConfig",
    "SparseAutoencoder", "catalog_labels", "explain_candidate", "explain_config", "name_latents",
    "train_sae",
]
