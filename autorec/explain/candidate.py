"""`autorec explain CANDIDATE_ID`: RecSAE on an archived sequential candidate.

The archive keeps a candidate's settings and metrics, not its weights, so the model is retrained
from the very training config `autorec export` writes (the run's stored settings and seed; the
trainer seeds everything, so the same machine retrains the same model). Then:

    prefixes of every user's history -> the model's last hidden state      (explain/hidden.py)
    TopK sparse autoencoder on those states                                (explain/sae.py)
    each latent named by the genres/titles of its top sequences, scored    (explain/naming.py)
    reconstruction: variance explained; test NDCG@10 when the model's state is replaced by the
    SAE's reconstruction (and, as a floor, by the mean state)

Explaining is review, not selection: nothing here reaches a proposer or ranks candidates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic
import torch

from autorec.errors import ConfigError, describe_validation_error
from autorec.explain.errors import ExplainError
from autorec.explain.hidden import HiddenStateProbe, user_prefixes
from autorec.explain.naming import NamedLatent, catalog_labels, name_latents
from autorec.explain.sae import SAEConfig, train_sae

# Settings that change what is reported, not the trained weights: left out of the retraining.
EVALUATION_ONLY = ("extra_metrics",)


class ExplainConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    sae: SAEConfig = pydantic.Field(default_factory=SAEConfig)
    window: int = pydantic.Field(10, ge=1, le=1000, description="recent items that describe a sequence")
    min_length: int = pydantic.Field(5, ge=1, description="shortest history prefix explained")
    max_sequences: int = pydantic.Field(20000, ge=100, description="prefixes sampled at most")
    top_sequences: int = pydantic.Field(100, ge=4, description="top activations a name is built and checked on")
    min_active: int = pydantic.Field(20, ge=2, description="sequences a latent must fire on to be named")
    min_confidence: float = pydantic.Field(0.75, ge=0.5, le=1.0, description="held-out AUROC to count as interpretable")


@dataclasses.dataclass
class Explanation:
    candidate_id: int
    run: str
    model: str
    dataset: str
    seed: int
    retrained: str  # how the model was obtained, in a sentence
    archived_valid: dict[str, float]  # the archived validation figure(s) the retrain can be checked by
    retrained_valid: dict[str, float]
    hidden_dim: int
    sequences: int
    named_by: str  # "genre" or "title"
    latents: int
    dead_latents: int
    k: int
    explained_variance: float
    test_ndcg: dict[str, float]  # model / reconstruction / mean state; empty when not computable
    named: list[NamedLatent]  # every named latent, most confident first
    min_confidence: float

    @property
    def interpretable(self) -> list[NamedLatent]:
        return [n for n in self.named if n.confidence >= self.min_confidence]

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["named_latents"] = len(self.named)
        out["interpretable_latents"] = len(self.interpretable)
        out["interpretable"] = [dataclasses.asdict(n) for n in self.interpretable[:top]]
        del out["named"]
        return out


def explain_candidate(archive: Any, candidate_id: int, config: ExplainConfig | None = None,
                      on_stage: Any = None) -> Explanation:
    """Retrain an archived sequential candidate, fit RecSAE to its hidden states, name latents.

    `on_stage(text)` hears each long step before it starts (retraining, collecting, fitting)."""
    from autorec.api import check_train_spec, train_data
    from autorec.data.catalog import item_catalog
    from autorec.export import candidate_specs
    from autorec.models import MODELS
    from autorec.trainer import train_model

    config = config or ExplainConfig()
    say = on_stage or (lambda text: None)
    candidate = archive.get_candidate(candidate_id)  # an unknown id: NotFoundError, one line
    if candidate.status != "done":
        reason = f" ({candidate.error.strip().splitlines()[-1]})" if candidate.error else ""
        raise ExplainError(f"candidate {candidate_id} is {candidate.status}{reason}: only a done "
                           "candidate has a trained model to explain")
    exported = candidate_specs(archive, candidate_id)
    members = [m for m in exported.members if MODELS.get(m.spec.model) and
               MODELS[m.spec.model].task == "sequential"]
    if not members:
        first = exported.members[0].spec.model
        task = MODELS[first].task if first in MODELS else "unknown"
        raise ExplainError(f"candidate {candidate_id} is a {first} ({task}) model: autorec explain "
                           "reads the hidden states of sequential models (sasrec, hstu)")
    member = members[0]
    spec = member.spec.model_copy(update={"settings": {
        k: v for k, v in member.spec.settings.items() if k not in EVALUATION_ONLY}})
    model_task = check_train_spec(spec)
    data = train_data(spec, model_task)
    labels = catalog_labels(item_catalog(spec.dataset), data.num_items)  # before the long part

    seed = int(spec.settings.get("seed", 0))
    say(f"retraining {spec.model} on {spec.dataset} with the run's settings (seed {seed}) ...")
    result = train_model(spec.model, data, spec.settings)
    probe = HiddenStateProbe(result.module, spec.model)

    say("collecting hidden states and fitting the sparse autoencoder ...")
    histories = user_prefixes(data, config.min_length, config.max_sequences, config.sae.seed)
    hidden = probe.represent(histories.inputs)
    fit = train_sae(hidden, config.sae)
    with torch.no_grad():
        codes = fit.sae.encode(hidden)
    named = name_latents(codes, histories.inputs[:, -config.window:], labels,
                         top=config.top_sequences, min_active=config.min_active,
                         seed=config.sae.seed)

    archived = {k: float(v) for k, v in (spec.metrics or {}).items() if k == "valid_ndcg@10"}
    return Explanation(
        candidate_id=candidate_id, run=exported.run, model=spec.model, dataset=spec.dataset,
        seed=seed,
        retrained=(f"weights are not archived: {spec.model} was retrained from the stored "
                   f"settings of run '{exported.run}' with seed {seed} (deterministic on the "
                   "same machine and torch)"),
        archived_valid=archived,
        retrained_valid={"valid_ndcg@10": float(result.valid_metrics["ndcg@10"])},
        hidden_dim=hidden.shape[1], sequences=len(hidden), named_by=labels.kind,
        latents=fit.sae.width, dead_latents=fit.dead_latents, k=fit.sae.k,
        explained_variance=fit.explained_variance,
        test_ndcg=reconstruction_ndcg(probe, fit.sae, data),
        named=named, min_confidence=config.min_confidence,
    )


def reconstruction_ndcg(probe: HiddenStateProbe, sae: Any, data: Any) -> dict[str, float]:
    """Test NDCG@10 of the model, of the model with its last hidden state replaced by the SAE's
    reconstruction, and with the mean state (every user gets the same list): how much of what
    the model ranks by survives the SAE. Empty when `score` is not a function of the state."""
    from autorec.metrics import ranking_metrics, target_ranks

    hidden = probe.represent(data.test_history)
    with torch.no_grad():
        states = {"model": hidden, "reconstruction": sae(hidden),
                  "mean_state": hidden.mean(dim=0, keepdim=True).expand_as(hidden)}
    out = {}
    for name, state in states.items():
        logits = probe.scores_from_hidden(state, check=data.test_history)
        if logits is None:
            return {}
        ranks = target_ranks(logits, data.test_target, data.test_seen)
        out[name] = ranking_metrics(ranks, k=10)["ndcg@10"]
    return out


def explain_config(**values: Any) -> ExplainConfig:
    """An ExplainConfig from flat keywords (`k=16`, `window=20`): SAE keys go to `sae`."""
    sae_keys = set(SAEConfig.model_fields)
    sae = {k: v for k, v in values.items() if k in sae_keys and v is not None}
    rest = {k: v for k, v in values.items() if k not in sae_keys and v is not None}
    try:
        return ExplainConfig(sae=SAEConfig(**sae), **rest)
    except pydantic.ValidationError as err:
        raise ConfigError(f"explain: {describe_validation_error(err, 'settings')}") from None
