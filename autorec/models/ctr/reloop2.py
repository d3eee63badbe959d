"""ReLoop2 (Zhu et al., KDD 2023): a responsive error-compensation loop around any CTR model.

A base model (`base`: fm, deepfm, dcnv2, din or dare) is trained as usual; ReLoop2 adds nothing
to training. At inference it keeps an error memory of the rows whose labels have arrived:
(key, error = label - the base's predicted probability). A new row's base probability is
corrected by the errors of its nearest stored neighbours:

    p = clamp(sigmoid(base_logit) + mix * sum_j w_j * error_j),   w = softmax(cos_sim / temperature)

over the `neighbours` most similar keys, and the model returns logit(p). When the data drifts
(ML-100K's global-time split: late users and items the model saw little of), the recent errors
of similar rows say which way the frozen model is currently wrong, with no retraining.

Choices, and why:
- Memory: a bounded FIFO with exact cosine kNN (reloop2_memory.ErrorMemory) rather than the
  paper's LSH sketch: at 10,000 rows per evaluation period the exact lookup is cheap, and it
  tests the compensation idea without the sketch's hashing noise.
- Mixing weight: a fixed `mix` (a knob the architecture search can tune), not learned: a learned
  weight would need a held-out stream of its own, and validation is where the search chooses.
- Key (`key`): "embeddings" is the base's pooled field embeddings, each field L2-normalised
  before concatenation so every field counts equally in the cosine (otherwise the id tables with
  the largest norms decide alone); "hidden" is the input of the base's output layer (its last
  hidden representation; bases with an MLP head only, not fm).
- Errors are the base's, not the corrected model's: writing corrected errors would feed the
  correction back into itself.

Evaluation is a stream (autorec/trainer.py, `observe`): each batch is scored with the memory as
it is, then its (key, error) pairs are written, so a row's own label never corrects its own
score. Before each pass the memory is filled from the end of the training split; test follows
validation, so test starts with the validation errors in memory. Rows are replayed in event-time
order. With mix = 0 the model is its base, exactly.

Defaults (memory 10,000 rows, k = 32, temperature 0.2, mix 0.5, key "embeddings") were picked on
the validation AUC of one DeepFM trained on ML-100K's global-time split (seed 0): more neighbours
and a softer temperature beat k = 8 or temperature 0.05, whose few-row estimates are noise, and
mix 1.0 over-corrects; the memory size mattered little between 2,000 and 20,000.

The base's own knobs are accepted flat (`hidden_units`, `dropout`, `cross_layers`, ...) and
passed through; a knob of another base is refused. The base's `train_defaults` are not applied
(fm's weight decay: set `weight_decay` yourself).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pydantic
import torch
from torch.nn import functional as F

from autorec.data.features import Feature
from autorec.errors import describe_validation_error
from autorec.models import model_class
from autorec.models.base import CTRModel, CTRModelConfig
from autorec.models.ctr.layers import coerce_config
from autorec.models.ctr.reloop2_memory import ErrorMemory

BASES = ("fm", "deepfm", "dcnv2", "din", "dare")
HEADLESS = ("fm",)  # bases without an output layer over a hidden vector: no "hidden" key
EPS = 1e-6  # corrected probabilities stay inside (0, 1), so logloss and logit are finite


class _ReLoop2Settings(CTRModelConfig):
    base: Literal[BASES] = pydantic.Field(  # type: ignore[valid-type]
        "deepfm", description="the CTR model whose errors are compensated"
    )
    memory_size: int = pydantic.Field(
        10000, ge=1, le=1_000_000, description="rows the error memory keeps (FIFO)"
    )
    neighbours: int = pydantic.Field(
        32, ge=1, le=1024, description="k: stored rows whose errors correct a score"
    )
    mix: float = pydantic.Field(
        0.5, ge=0.0, le=1.0, description="weight of the error estimate; 0 = the base model"
    )
    key: Literal["embeddings", "hidden"] = pydantic.Field(
        "embeddings",
        description="memory key: the base's per-field normalised embeddings, or the input of "
        "its output layer (not fm)",
    )
    temperature: float = pydantic.Field(
        0.2, gt=0.0, le=10.0, description="softmax temperature over the neighbours' cosines"
    )

    @pydantic.model_validator(mode="after")
    def _fits_base(self) -> Any:
        if self.key == "hidden" and self.base in HEADLESS:
            raise ValueError(f"key 'hidden' needs a base with an output layer; '{self.base}' "
                             "has none: use key 'embeddings'")  # fmt: skip
        self.base_config()
        return self

    @pydantic.model_serializer(mode="wrap")
    def _without_unset_base_knobs(self, handler: Any) -> Any:
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if not (k in BASE_KNOBS and v is None)}

    def base_knobs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in BASE_KNOBS if getattr(self, k) is not None}

    def base_config(self) -> CTRModelConfig:
        """The base model's config: the shared embedding settings and the knobs given."""
        schema = model_class(self.base).Config
        knobs = self.base_knobs()
        foreign = sorted(set(knobs) - set(schema.model_fields))
        if foreign:
            own = sorted(set(schema.model_fields) - set(CTRModelConfig.model_fields))
            raise ValueError(f"{', '.join(foreign)}: not a knob of base '{self.base}' "
                             f"(its knobs: {', '.join(own) or 'none'})")  # fmt: skip
        values = {"embedding_dim": self.embedding_dim, "field_dims": self.field_dims, **knobs}
        try:
            return schema.model_validate(values)
        except pydantic.ValidationError as err:
            raise ValueError(f"base '{self.base}': {describe_validation_error(err)}") from None


def _base_knob_fields() -> dict[str, Any]:
    """Every base's own config fields, optional here (None: the base's default)."""
    owners: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for name in BASES:
        for key, field in model_class(name).Config.model_fields.items():
            if key not in CTRModelConfig.model_fields:
                owners.setdefault(key, []).append(name)
                described.setdefault(key, field.description or "")
    return {
        key: (Any, pydantic.Field(None, description=f"base knob ({', '.join(bases)}): "
                                  f"{described[key]}".rstrip(": ")))
        for key, bases in owners.items()
    }  # fmt: skip


_KNOB_FIELDS = _base_knob_fields()
BASE_KNOBS = tuple(_KNOB_FIELDS)
ReLoop2Config = pydantic.create_model(
    "ReLoop2Config", __base__=_ReLoop2Settings, __module__=__name__, **_KNOB_FIELDS
)
ReLoop2Config.__doc__ = "ReLoop2's memory settings plus the base model's knobs, flat."


class ReLoop2(CTRModel):
    name: ClassVar[str] = "reloop2"
    Config: ClassVar[type[CTRModelConfig]] = ReLoop2Config
    # The stream's granularity: errors are written once per evaluation batch, so a batch of 4096
    # (the trainer's default) would leave most of a 10,000-row period uncorrected by its own
    # recent rows. 256 keeps the loop responsive at ~40 batches per period.
    train_defaults: ClassVar[dict[str, Any]] = {"eval_batch_size": 256}

    def __init__(self, features: list[Feature], config: CTRModelConfig | dict | None = None):
        config = coerce_config(ReLoop2Config, config)
        super().__init__(features, config)
        self.base = model_class(config.base)(features, config.base_config())
        self.memory = ErrorMemory(config.memory_size, config.neighbours, config.temperature)
        self._last: tuple[dict, torch.Tensor, torch.Tensor] | None = None

    @property
    def memory_capacity(self) -> int:
        """Rows the memory can hold: a streaming evaluation need replay no more history."""
        return self.config.memory_size

    def prepare(self, data) -> None:
        self.base.prepare(data)

    def reset_memory(self) -> None:
        self.memory.clear()
        self._last = None

    def key_and_logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory key of each row and the base's logits."""
        if self.config.key == "hidden":
            captured: list[torch.Tensor] = []
            hook = self.base.head.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
            try:
                logits = self.base(batch)
            finally:
                hook.remove()
            return captured[0], logits
        pooled = self.base.embedding.pooled(batch)
        key = torch.cat([F.normalize(vector, dim=1) for vector in pooled], dim=1)
        return key, self.base(batch)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.training or self.config.mix == 0:
            return self.base(batch)
        key, logits = self.key_and_logits(batch)
        self._last = (batch, key, logits)  # `observe` of this batch reuses them
        if len(self.memory) == 0:
            return logits
        corrected = torch.sigmoid(logits) + self.config.mix * self.memory.estimate(key)
        return torch.logit(corrected.clamp(EPS, 1 - EPS))

    @torch.no_grad()
    def observe(self, batch: dict[str, torch.Tensor], labels: torch.Tensor, logits: torch.Tensor):
        """Write a scored batch's (key, base error) pairs. `logits` (the corrected scores) are not
        used: the memory holds the base's errors."""
        if self.config.mix == 0:
            return  # the memory is never read
        if self._last is not None and self._last[0] is batch:
            _, key, base_logits = self._last
        else:
            key, base_logits = self.key_and_logits(batch)
        self._last = None
        self.memory.write(key, labels.to(base_logits.device) - torch.sigmoid(base_logits))
