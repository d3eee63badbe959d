"""iHAS settings: the gates' and the three stages' knobs, checked before any data loads."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from autorec.errors import ConfigError, describe_validation_error


class GateSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    width: int = pydantic.Field(
        32, ge=2, le=64, description="embedding width of every field in the search stage"
    )
    hidden: int = pydantic.Field(64, ge=1, le=1024, description="hidden width of the gate network")
    sparsity: float = pydantic.Field(
        0.1, ge=0, le=100, description="weight of the sparsity regulariser (expected kept share)"
    )
    sparsity_cost: Literal["width", "params"] = pydantic.Field(
        "width",
        description="how fields share the sparsity penalty: 'width' equally (the paper's), "
        "'params' by their tables' rows, so large tables shrink first",
    )
    polarisation: float = pydantic.Field(
        0.05, ge=0, le=100, description="weight of the bi-polarisation regulariser, 4p(1-p)"
    )
    temperature: float = pydantic.Field(
        1.0, gt=0, le=10, description="relaxed-Bernoulli temperature in the first search epoch"
    )
    final_temperature: float = pydantic.Field(
        0.2, gt=0, le=10, description="temperature in the last search epoch (annealed geometrically)"
    )
    gate_step: float = pydantic.Field(
        0.1, gt=0, le=10,
        description="about how far one Adam step moves a gate's keep-logit (the gate network's "
        "output is scaled by gate_step / lr, so a short search stage can still move the gates)",
    )  # fmt: skip
    instance_gain: float = pydantic.Field(
        1.0, gt=0, le=10000,
        description="speed-up of the gates' instance-wise term over the model's learning rate "
        "(higher: more instance-wise variety, and noisier gates)",
    )  # fmt: skip
    open_bias: float = pydantic.Field(
        3.0, ge=-10, le=10, description="initial keep-logit of every gate (3: p = 0.95)"
    )


class IhasSettings(GateSettings):
    search_epochs: int = pydantic.Field(
        6, ge=1, le=1000, description="epochs of the search stage (early stopping may end sooner)"
    )
    retrain_epochs: int = pydantic.Field(
        20, ge=1, le=1000, description="epochs per group model (early stopping ends sooner)"
    )
    retrain_on: Literal["group", "all"] = pydantic.Field(
        "group",
        description="train each group model on its group's rows (the paper) or on every row",
    )
    lr: float | None = pydantic.Field(None, gt=0, le=1, description="Adam lr; default: the trainer's")
    batch_size: int | None = pydantic.Field(None, ge=1, le=65536)
    patience: int | None = pydantic.Field(None, ge=0, le=1000)
    seed: int = pydantic.Field(0, ge=0)
    threads: int | None = pydantic.Field(None, ge=1, le=256)
    min_group_rows: int = pydantic.Field(
        200, ge=1, description="k-means groups with fewer training rows than this are an error"
    )

    def train_settings(self) -> dict[str, Any]:
        """The trainer settings the user fixed, shared by every stage."""
        keys = ("lr", "batch_size", "patience", "threads")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {**out, "seed": self.seed}


def ihas_settings(values: dict[str, Any] | None) -> IhasSettings:
    try:
        return IhasSettings.model_validate(values or {})
    except pydantic.ValidationError as err:
        raise ConfigError(f"invalid ihas settings: {describe_validation_error(err, 'ihas')}") from None
