"""`--set eval_rows=N`: the trainer scores the prompt_templates space's seeded row sample."""

import pytest
import torch

from autorec.trainer import train_model


def test_eval_rows_scores_the_spaces_seeded_sample_and_says_so(ml100k):
    """`autorec train --set eval_rows=N` (the way to score llm_ranker quickly on CPU) scores the
    same stratified rows as the prompt_templates space; shown with the mean-label scorer."""
    from autorec.models.llm_ranker.evaluate import eval_rows
    from autorec.metrics import auc

    result = train_model("mean", ml100k, {"eval_rows": 50})
    assert result.metrics["eval_rows"] == 50 and result.valid_metrics["eval_rows"] == 50
    rows = eval_rows(ml100k.test.label, 50)
    with torch.no_grad():
        expected = auc(result.module(ml100k.test.batch(rows)), ml100k.test.label[rows])
    assert result.metrics["auc"] == pytest.approx(expected)
    assert "eval_rows" not in train_model("mean", ml100k, {}).metrics
