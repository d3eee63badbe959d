"""Weight-only int8 for decoding a small causal LM on a CPU.

Decoding one token reads every weight of the model once, so on a CPU its speed is set by memory
bandwidth: float32 weights are four times the bytes of int8 ones. `int8_model` returns a copy of a
model whose Linear layers keep int8 weights with one scale per output channel and multiply
through `aten._weight_int8pack_mm` (the CPU kernel PyTorch ships for weight-only int8: bfloat16
activations, int8 weights, float accumulation). Activations are not quantised: dynamic int8
quantisation (`quantize_dynamic`) rounds the activations too, and the outlier channels of small
LMs then triple SmolLM2's perplexity on README text (96.7 -> 280.3), where weight-only int8
keeps it (97.4, 91.5% of greedy next tokens unchanged) and decodes a step 2.5x faster
(`benchmarks/int8_decoding.py`).

The copy shares every other tensor (embeddings, norms) with the float model, which stays
untouched: the `llm_ranker` fine-tunes it with LoRA.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class Int8Linear(torch.nn.Module):
    """y = x W^T (+ b) with W stored as int8 rows and a bfloat16 scale per row."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        quantised = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_int8", quantised.contiguous())
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = linear.bias  # shared with the float layer (None for SmolLM2)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch.ops.aten._weight_int8pack_mm(rows, self.weight_int8, self.scale)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def supported() -> str | None:
    """None when this torch has the CPU weight-only int8 kernel, else why not."""
    try:
        probe = Int8Linear(torch.nn.Linear(8, 4, bias=False))
        probe(torch.zeros(1, 8))
    except (AttributeError, RuntimeError, NotImplementedError) as err:
        return f"this torch has no CPU weight-only int8 kernel ({type(err).__name__}: {err})"
    return None


def int8_model(model: Any) -> Any:
    """A copy of `model` for inference whose Linear layers are `Int8Linear`; every other
    parameter and buffer is the float model's own tensor, not a copy."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    copied = copy.deepcopy(model, memo=shared)
    for module in list(copied.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, Int8Linear(child))
    return copied.eval()
