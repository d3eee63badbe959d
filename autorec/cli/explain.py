"""`autorec explain CANDIDATE_ID`: RecSAE's named latents of an archived sequential model."""

from __future__ import annotations

from typing import Optional

import typer

from autorec.cli.common import db_option, open_archive
from autorec.cli.output import console, print_json, table


def explain(
    candidate_id: int = typer.Argument(..., metavar="CANDIDATE_ID", help="candidate id (autorec archive list)"),
    top: int = typer.Option(15, "--top", "-n", min=1, help="interpretable latents to list"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables"),
    expansion: Optional[int] = typer.Option(None, "--expansion", help="SAE latents per hidden dimension (default 8)"),
    k: Optional[int] = typer.Option(None, "--k", help="active latents per sequence, TopK (default 8)"),
    sae_epochs: Optional[int] = typer.Option(None, "--sae-epochs", help="SAE training epochs (default 30)"),
    window: Optional[int] = typer.Option(None, "--window", help="recent items that describe a sequence (default 10)"),
    max_sequences: Optional[int] = typer.Option(
        None, "--max-sequences", help="history prefixes sampled to fit and name on (default 20000)"
    ),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence", help="held-out AUROC a name needs to be listed (default 0.75)"
    ),
    db: Optional[str] = db_option(),
) -> None:
    """Train a sparse autoencoder (RecSAE) on an archived sequential candidate's hidden states
    and list its interpretable latents, named by the genres and titles of the sequences that
    activate them, with the confidence of each name. The archive holds no weights: the model is
    retrained from the run's stored settings and seed first (as `autorec export` writes them)."""
    from autorec.explain import explain_candidate, explain_config

    config = explain_config(expansion=expansion, k=k, epochs=sae_epochs, window=window,
                            max_sequences=max_sequences, min_confidence=min_confidence)
    stage = None if as_json else (lambda text: console.print(text, style="dim"))
    with open_archive(db) as archive:
        result = explain_candidate(archive, candidate_id, config, on_stage=stage)
    if as_json:
        print_json(result.to_dict(top=top))
        return
    _print(result, top)


def _print(result, top: int) -> None:
    console.print(f"candidate {result.candidate_id} of run '{result.run}': "
                  f"[bold]{result.model}[/] on {result.dataset}")
    console.print(result.retrained)
    if result.archived_valid:
        archived = result.archived_valid["valid_ndcg@10"]
        console.print(f"valid ndcg@10: archived {archived:.4f}, retrained "
                      f"{result.retrained_valid['valid_ndcg@10']:.4f}")
    console.print(
        f"SAE: {result.latents} latents ({result.latents // result.hidden_dim} x hidden "
        f"{result.hidden_dim}), TopK k={result.k}, fitted to {result.sequences:,} history "
        f"prefixes; {result.dead_latents} latents never fire"
    )
    line = f"reconstruction: {result.explained_variance:.1%} of the hidden states' variance explained"
    if result.test_ndcg:
        ndcg = result.test_ndcg
        line += (f"; test ndcg@10 {ndcg['model']:.4f} with the model's state, "
                 f"{ndcg['reconstruction']:.4f} with its reconstruction "
                 f"({ndcg['mean_state']:.4f} with the mean state)")
    console.print(line)
    shown = result.interpretable[:top]
    title = (f"interpretable latents, named by {result.named_by}: {len(result.interpretable)} of "
             f"{len(result.named)} named (confidence = held-out AUROC >= {result.min_confidence:g})")
    rows = [[n.latent, n.name, round(n.confidence, 3), f"{n.frequency:.1%}",
             f"{n.top_share:.0%} / {n.base_share:.0%}", "; ".join(n.top_titles)] for n in shown]
    console.print(table(title, ["latent", "name", "confidence", "fires on", "share top / all",
                                "top titles"], rows))
    if not shown:
        console.print("no latent's name reached the confidence threshold; lower "
                      "--min-confidence or fit longer (--sae-epochs)")
