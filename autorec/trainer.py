"""One trainer for every model: seeding, early stopping, metrics, size and speed.

`train_model("deepfm", data, {"lr": 3e-3, "embedding_dim": 8})` takes one flat dict of settings:
each key belongs either to the model's config or to `TrainConfig` (no name is in both), so a
user's `--set key=value` never needs to say which.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from typing import Any, Callable, Literal

import numpy as np
import pydantic
import torch
from torch import nn

from autorec import kernels
from autorec.beyond_accuracy import fairness_head, rerank
from autorec.beyond_accuracy.evaluate import ctr_extras, sequential_extras
from autorec.data.attributes import GROUP_ATTRIBUTES
from autorec.data.features import CTRData, SequentialData, TensorSplit, pad_left
from autorec.errors import ConfigError, TrainingError, describe_validation_error
from autorec.metrics import auc, logloss, ranking_metrics, target_ranks
from autorec.models import MODELS, CTRModel, SequentialModel, model_class


class TrainConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    lr: float = pydantic.Field(1e-3, gt=0, le=1, description="Adam learning rate")
    weight_decay: float = pydantic.Field(0.0, ge=0, le=1, description="Adam L2 penalty")
    batch_size: int = pydantic.Field(1024, ge=1, le=65536)
    epochs: int = pydantic.Field(20, ge=1, le=10000, description="upper bound; early stopping ends sooner")
    patience: int = pydantic.Field(3, ge=0, le=1000, description="epochs without a better valid metric")
    seed: int = pydantic.Field(0, ge=0)
    threads: int | None = pydantic.Field(None, ge=1, le=256, description="torch threads; None keeps torch's")
    eval_batch_size: int = pydantic.Field(4096, ge=1, le=1 << 20)
    device: str = pydantic.Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$",
        description="where to train: auto (cuda when available), cpu, cuda, cuda:N, mps",
    )
    max_seconds: float | None = pydantic.Field(
        None, gt=0, description="stop training after this long and keep the best epoch so far"
    )
    eval_rows: int | None = pydantic.Field(
        None, ge=2, description="ctr: score a seeded, label-stratified sample of this many "
        "validation and test rows (the prompt_templates space's sample, seed 0) instead of "
        "every row, for models that score slowly (llm_ranker on CPU); None: every row",
    )
    kernels: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="op -> reference | triton | {knob: value} | variant id: which implementation "
        "of each kernel op the model runs (docs/kernels.md); unnamed ops run their reference",
    )

    extra_metrics: list[Literal["diversity", "fairness", "cold_start"]] = pydantic.Field(
        default_factory=list,
        description="beyond-accuracy metric families computed on valid and test after training "
        "(autorec.metrics_extra, docs/beyond_accuracy.md)",
    )
    rerank_mmr_weight: float = pydantic.Field(
        0.0, ge=0, le=1, description="sequential: MMR re-ranking of the top-10 over item genres; "
        "0 = the model's order, 1 = diversity only",
    )
    rerank_target_genres: int = pydantic.Field(
        0, ge=0, le=1000, description="sequential: re-rank each top-10 list to cover this many "
        "genres (DLCRec's control number); 0 = off",
    )
    fair_adversary_weight: float = pydantic.Field(
        0.0, ge=0, le=100, description="ctr: adversarial attribute head on the user_id embedding"
    )
    fair_orthogonality_weight: float = pydantic.Field(
        0.0, ge=0, le=100, description="ctr: penalise user embeddings along the attribute head's "
        "directions (FairRec's orthogonality)",
    )
    fair_attribute: str = pydantic.Field(
        "gender", description="the user attribute the fairness knobs act on (gender, age)"
    )

    @pydantic.field_validator("extra_metrics")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @pydantic.model_validator(mode="after")
    def _one_reranker(self) -> "TrainConfig":
        if self.rerank_mmr_weight and self.rerank_target_genres:
            raise ValueError("rerank_mmr_weight and rerank_target_genres are alternatives; set one")
        if self.fair_attribute not in GROUP_ATTRIBUTES:
            known = ", ".join(GROUP_ATTRIBUTES)
            raise ValueError(f"fair_attribute '{self.fair_attribute}' is not one of {known}")
        return self

    @pydantic.field_validator("kernels")
    @classmethod
    def _known_kernels(cls, value: dict[str, Any]) -> dict[str, Any]:
        kernels.select(value)  # an unknown op or variant fails here, before any data loads
        return value


# Sequential models see ~1k sequences per epoch on ML-100K: small batches, many epochs.
TASK_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "ctr": {},
    "sequential": {"batch_size": 128, "epochs": 200, "patience": 10, "lr": 1e-3},
}
VALID_METRIC = {"ctr": "auc", "sequential": "ndcg@10"}


@dataclasses.dataclass
class TrainResult:
    model: str
    task: str
    dataset: str
    metrics: dict[str, float]  # on the test split, from the best validation epoch
    valid_metrics: dict[str, float]
    params: int
    embedding_params: int
    train_seconds: float
    latency_ms_per_1k: float  # inference time per 1,000 test rows (CTR) or users (sequential)
    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]]
    config: dict[str, Any]  # model config and train config, as used
    split_hash: str
    module: nn.Module | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("module")
        return out


def split_settings(
    name: str, settings: dict[str, Any] | None, task: str
) -> tuple[pydantic.BaseModel, TrainConfig]:
    """Validate one flat settings dict into the model's config and the train config."""
    cls = model_class(name)
    settings = dict(settings or {})
    model_keys = set(cls.Config.model_fields)
    train_keys = set(TrainConfig.model_fields)
    unknown = sorted(set(settings) - model_keys - train_keys)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} for model '{name}'; "
            f"model keys: {', '.join(sorted(model_keys))}; train keys: {', '.join(sorted(train_keys))}"
        )
    train_values = {**TASK_TRAIN_DEFAULTS[task], **cls.train_defaults}
    train_values.update({k: v for k, v in settings.items() if k in train_keys})
    model_values = {k: v for k, v in settings.items() if k in model_keys}
    return _validated(cls.Config, model_values, name), _validated(TrainConfig, train_values, "train")


def _validated(schema: type[pydantic.BaseModel], values: dict[str, Any], what: str) -> Any:
    try:
        return schema.model_validate(values)
    except pydantic.ValidationError as err:
        raise ConfigError(f"invalid {what} config: {describe_validation_error(err, what)}") from None


def build_model(name: str, data: CTRData | SequentialData, model_config: Any) -> nn.Module:
    cls = model_class(name)
    task = MODELS[name].task
    if task == "ctr":
        if not isinstance(data, CTRData):
            raise ConfigError(f"model '{name}' is a ctr model; pick --task ctr")
        return cls(data.features, model_config)
    if not isinstance(data, SequentialData):
        raise ConfigError(f"model '{name}' is a sequential model; pick --task sequential")
    return cls(data.num_items, data.max_len, model_config)


def train_model(
    name: str,
    data: CTRData | SequentialData,
    settings: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    adapt_model: Callable[[nn.Module], None] | None = None,
    on_epoch_start: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train `name` on `data` and score it on the test split at its best validation epoch.

    `adapt_model(model)` may change the built model before training (iHAS installs its gates
    there); `on_epoch_start(epoch, model)` runs before each training epoch (a schedule for a
    temperature or a regulariser weight). Any submodule with an `extra_loss()` method adds its
    value to every CTR training batch's loss.
    """
    if name not in MODELS:
        model_class(name)  # raises the error that lists known models
    task = MODELS[name].task
    model_config, train_config = split_settings(name, settings, task)
    _seed_everything(train_config.seed)
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    device = resolve_device(train_config.device)
    kernels.configure(train_config.kernels, device)
    model = build_model(name, data, model_config)
    if adapt_model is not None:
        adapt_model(model)
    reranker = rerank.from_settings(task, data, train_config)
    if task == "ctr":
        fairness_head.attach(
            model, data, train_config.fair_attribute,
            train_config.fair_adversary_weight, train_config.fair_orthogonality_weight,
        )  # fmt: skip
    elif train_config.fair_adversary_weight or train_config.fair_orthogonality_weight:
        raise ConfigError("fair_adversary_weight and fair_orthogonality_weight apply to ctr models")
    elif train_config.eval_rows is not None:
        raise ConfigError("eval_rows applies to ctr models")
    model.prepare(data)
    model.to(device)
    if train_config.eval_rows is not None:
        data = _evaluation_sample(data, train_config.eval_rows)
    if task == "ctr":
        loop = _CTRLoop(model, data, device)
    else:
        loop = _SequentialLoop(model, data, device, reranker)

    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state = -math.inf, 0, copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    if model.trainable:
        optimiser = torch.optim.Adam(
            model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
        )
        generator = torch.Generator().manual_seed(train_config.seed)
        for epoch in range(1, train_config.epochs + 1):
            if on_epoch_start is not None:
                on_epoch_start(epoch, model)
            model.train()
            loss = loop.train_epoch(optimiser, train_config.batch_size, generator)
            if not math.isfinite(loss):
                raise TrainingError(f"{name}: training loss became {loss} in epoch {epoch}")
            valid = loop.evaluate("valid", train_config.eval_batch_size)
            score = valid[VALID_METRIC[task]]
            row = {"epoch": epoch, "loss": loss, **{f"valid_{k}": v for k, v in valid.items()}}
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if score > best_score:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - best_epoch > train_config.patience:
                break
            if train_config.max_seconds and time.perf_counter() - start > train_config.max_seconds:
                break
        model.load_state_dict(best_state)
    train_seconds = time.perf_counter() - start
    fairness_head.detach(model)  # a training-time regulariser: not part of the model

    extras = train_config.extra_metrics
    valid_metrics = loop.evaluate("valid", train_config.eval_batch_size)
    valid_metrics.update(loop.extra_metrics("valid", train_config.eval_batch_size, extras))
    t0 = time.perf_counter()
    test_metrics = loop.evaluate("test", train_config.eval_batch_size)
    latency = (time.perf_counter() - t0) / max(loop.rows("test"), 1) * 1000 * 1000
    test_metrics.update(loop.extra_metrics("test", train_config.eval_batch_size, extras))
    if train_config.eval_rows is not None:  # says that these are a sample's metrics, and its size
        valid_metrics["eval_rows"] = float(loop.rows("valid"))
        test_metrics["eval_rows"] = float(loop.rows("test"))
    return TrainResult(
        model=name,
        task=task,
        dataset=data.dataset,
        metrics=test_metrics,
        valid_metrics=valid_metrics,
        params=sum(p.numel() for p in model.parameters()),
        embedding_params=sum(
            m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding)
        ),
        train_seconds=train_seconds,
        latency_ms_per_1k=latency,
        epochs_run=len(history),
        best_epoch=best_epoch,
        history=history,
        config={"model": model_config.model_dump(), "train": train_config.model_dump()},
        split_hash=data.split_hash,
        module=model,
    )


def evaluate_trained(
    model: nn.Module, data: CTRData | SequentialData, settings: dict[str, Any] | None = None
) -> dict[str, dict[str, float]]:
    """{"valid": ..., "test": ...} metrics of an already trained model under `settings`' evaluation
    keys (`extra_metrics`, the re-rankers), without training: e.g. one model scored under
    several re-ranking weights. Settings that change training are ignored."""
    task = "ctr" if isinstance(data, CTRData) else "sequential"
    train_config = _validated(TrainConfig, {**TASK_TRAIN_DEFAULTS[task], **(settings or {})}, "train")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if task == "ctr":
        loop = _CTRLoop(model, data, device)
    else:
        loop = _SequentialLoop(model, data, device, rerank.from_settings(task, data, train_config))
    out = {}
    for split in ("valid", "test"):
        metrics = loop.evaluate(split, train_config.eval_batch_size)
        metrics.update(
            loop.extra_metrics(split, train_config.eval_batch_size, train_config.extra_metrics)
        )
        out[split] = metrics
    return out


def _evaluation_sample(data: CTRData, rows: int) -> CTRData:
    """`data` with its validation and test splits cut to the seeded, label-stratified sample of
    `rows` rows each that the prompt_templates space scores (training rows untouched)."""
    from autorec.models.llm_ranker.evaluate import DEFAULT_EVAL_SEED, eval_rows

    def sample(split: TensorSplit) -> TensorSplit:
        index = eval_rows(split.label, rows, DEFAULT_EVAL_SEED)
        stamps = split.timestamp[index] if split.timestamp is not None else None
        return TensorSplit(split.batch(index), split.label[index], stamps)

    return dataclasses.replace(data, valid=sample(data.valid), test=sample(data.test))


def resolve_device(name: str) -> torch.device:
    """`auto` picks the GPU when torch sees one; asking for a missing device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for, but this torch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but this torch has no MPS backend")
    return torch.device(name)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def training_windows(sequence: list[int], max_len: int) -> list[list[int]]:
    """Cut a sequence longer than the model's window into windows of max_len + 1 items that
    share one item at each seam, newest first, so every next-item target is trained on (one
    window per user would use only the last max_len targets: 40% of ML-100K's)."""
    if len(sequence) < 2:
        return []
    windows = []
    end = len(sequence)
    while end >= 2:
        windows.append(sequence[max(0, end - max_len - 1) : end])
        end -= max_len
    return windows


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _run_epoch(
    rows: int,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    optimiser: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over `rows` training rows in a seeded random order; the mean loss per row."""
    order = torch.randperm(rows, generator=generator)
    total = 0.0
    for begin in range(0, rows, batch_size):
        index = order[begin : begin + batch_size]
        loss = batch_loss(index)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.item() * len(index)
    return total / rows


# The splits a streaming evaluation replays before scoring a split (see _streamed_logits).
STREAM_BEFORE = {"train": (), "valid": ("train",), "test": ("train", "valid")}


def time_order(split: TensorSplit) -> torch.Tensor:
    """Row indices in event-time order, ties in file order; file order without timestamps.

    Every split keeps its rows in file order (autorec.data.tasks), which for ML-100K is not time
    order, so a streaming evaluation sorts."""
    if split.timestamp is None:
        return torch.arange(len(split))
    return torch.sort(split.timestamp, stable=True).indices


class _CTRLoop:
    def __init__(self, model: CTRModel, data: CTRData, device: torch.device):
        self.model, self.data, self.device = model, data, device
        self.loss_fn = nn.BCEWithLogitsLoss()
        # Regularisers a module adds to the loss (iHAS's gate penalties), read after each forward.
        self.loss_terms = [m for m in model.modules() if callable(getattr(m, "extra_loss", None))]
        self.streaming = callable(getattr(model, "observe", None))

    @torch.no_grad()
    def _streamed_logits(self, split_name: str, batch_size: int) -> torch.Tensor:
        """Logits of one split scored as a stream, for models that learn from labels at
        inference (ReLoop2's error memory).

        The hook: a CTR model with `observe(batch, labels, logits)` and `reset_memory()` is told
        each evaluated batch's labels right after scoring it, as production learns them after
        serving, so a row's own label never reaches its own score. Each pass starts from an empty
        memory and replays the splits before this one (train; then valid before test) the same
        way with their logits discarded, then streams this split; all in event-time order
        (`time_order`), in batches of `batch_size`. `memory_capacity`, when the model has it,
        bounds the replay to the newest rows it can keep. Logits come back in the split's own
        row order. Models without `observe` are scored plainly, in file order.
        """
        self.model.eval()
        self.model.reset_memory()
        replay = [getattr(self.data, name) for name in STREAM_BEFORE[split_name]]
        capacity = getattr(self.model, "memory_capacity", None)
        skip = sum(map(len, replay)) - capacity if capacity is not None else 0
        for split in replay:  # the oldest rows would be overwritten anyway
            order = time_order(split)
            cut = min(max(skip, 0), len(order))
            self._stream(split, order[cut:], batch_size)
            skip -= cut
        split = getattr(self.data, split_name)
        order = time_order(split)
        logits = torch.empty(len(split))
        logits[order] = self._stream(split, order, batch_size)
        return logits

    def _stream(self, split: TensorSplit, order: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Score `order`'s rows batch by batch, each batch observed right after its scoring."""
        out = []
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            batch = _to(split.batch(index), self.device)
            logits = self.model(batch)
            self.model.observe(batch, split.label[index].to(self.device), logits)
            out.append(logits.cpu())
        return torch.cat(out) if out else torch.empty(0)

    def rows(self, split: str) -> int:
        return len(getattr(self.data, split))

    def train_epoch(self, optimiser, batch_size: int, generator: torch.Generator) -> float:
        split = self.data.train
        if len(split) == 0:
            raise TrainingError(f"{self.data.dataset}: the training split is empty")

        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            logits = self.model(_to(split.batch(index), self.device))
            loss = self.loss_fn(logits, split.label[index].to(self.device))
            for module in self.loss_terms:
                loss = loss + module.extra_loss()
            return loss

        return _run_epoch(len(split), batch_loss, optimiser, batch_size, generator)

    @torch.no_grad()
    def _logits(self, split_name: str, batch_size: int) -> torch.Tensor:
        if self.streaming:
            return self._streamed_logits(split_name, batch_size)
        split = getattr(self.data, split_name)
        self.model.eval()
        return torch.cat(
            [
                self.model(_to(split.batch(slice(b, b + batch_size)), self.device)).cpu()
                for b in range(0, len(split), batch_size)
            ]
        ) if len(split) else torch.empty(0)

    def evaluate(self, split_name: str, batch_size: int) -> dict[str, float]:
        split = getattr(self.data, split_name)
        logits = self._logits(split_name, batch_size)
        probabilities = torch.sigmoid(logits.double())
        return {"auc": auc(logits, split.label), "logloss": logloss(probabilities, split.label)}

    def extra_metrics(self, split_name: str, batch_size: int, families: list[str]) -> dict:
        """The beyond-accuracy metrics of `families` on one split (autorec.metrics_extra)."""
        if not families:
            return {}
        logits = self._logits(split_name, batch_size)
        return ctr_extras(self.data, split_name, logits, self.model, families)


class _SequentialLoop:
    def __init__(
        self,
        model: SequentialModel,
        data: SequentialData,
        device: torch.device,
        reranker: rerank.Reranker | None = None,
    ):
        self.model, self.data, self.device = model, data, device
        self.reranker = reranker
        windows = [w for seq in data.train for w in training_windows(seq.tolist(), data.max_len)]
        if not windows:
            raise TrainingError(f"{data.dataset}: no training sequence has two items")
        # Each window predicts itself shifted by one item.
        self.inputs = pad_left([w[:-1] for w in windows], data.max_len)
        self.targets = pad_left([w[1:] for w in windows], data.max_len)

    def rows(self, split: str) -> int:
        return len(getattr(self.data, f"{split}_target"))

    def train_epoch(self, optimiser, batch_size: int, generator: torch.Generator) -> float:
        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            return self.model.loss(
                self.inputs[index].to(self.device), self.targets[index].to(self.device)
            )

        return _run_epoch(len(self.inputs), batch_loss, optimiser, batch_size, generator)

    @torch.no_grad()
    def _rank(self, split: str, batch_size: int, keep_lists: bool, keep_scores: bool = False):
        """Filtered and unfiltered target ranks; with keep_lists the top-10 lists (re-ranked
        when a re-ranker is on, which then also sets the filtered ranks), with keep_scores each
        user's log-softmax scores (the representation the leakage probe reads)."""
        self.model.eval()
        history = getattr(self.data, f"{split}_history")
        targets = getattr(self.data, f"{split}_target")
        seen = getattr(self.data, f"{split}_seen")
        filtered, unfiltered, top, scores = [], [], [], []
        keep_lists = keep_lists or self.reranker is not None
        for b in range(0, len(targets), batch_size):
            logits = self.model.score(history[b : b + batch_size].to(self.device)).cpu()
            batch_targets, batch_seen = targets[b : b + batch_size], seen[b : b + batch_size]
            ranks = target_ranks(logits, batch_targets, batch_seen)
            if keep_lists:
                masked = rerank.masked_scores(logits, batch_targets, batch_seen)
                if self.reranker is None:
                    top.append(rerank.lists.top_k(masked, rerank.K))
                else:
                    top.append(self.reranker(masked))
                    ranks = rerank.lists.list_ranks(top[-1], batch_targets, ranks)
            if keep_scores:
                scores.append(torch.log_softmax(logits[:, 1:].float(), dim=1))
            filtered.append(ranks)
            unfiltered.append(target_ranks(logits, batch_targets))
        lists = torch.cat(top) if top else None
        return torch.cat(filtered), torch.cat(unfiltered), lists, (
            torch.cat(scores) if scores else None
        )

    def evaluate(self, split: str, batch_size: int) -> dict[str, float]:
        filtered, unfiltered, _, _ = self._rank(split, batch_size, keep_lists=False)
        metrics = ranking_metrics(filtered, k=10)
        metrics.update({f"{k}_unfiltered": v for k, v in ranking_metrics(unfiltered, k=10).items()})
        return metrics

    def extra_metrics(self, split: str, batch_size: int, families: list[str]) -> dict:
        """The beyond-accuracy metrics of `families` on one split (autorec.metrics_extra)."""
        if not families:
            return {}
        ranks, _, lists, scores = self._rank(
            split, batch_size, keep_lists=True, keep_scores="fairness" in families
        )
        return sequential_extras(self.data, split, lists, ranks, scores, families)
