"""`autorec export --optuna-storage`: a run opens as an Optuna study."""

import optuna
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app

runner = CliRunner()


def test_a_run_becomes_a_study_optuna_opens(tmp_path):
    db = tmp_path / "runs.db"
    with Archive(db) as a:
        run = a.create_run("architecture", "tpe", name="arch")
        rows = [
            ({"model": "fm", "lr": 0.001, "embedding_dim": 16}, "done", 0.0),
            ({"model": "deepfm", "lr": 0.004, "embedding_dim": 8}, "done", 0.012),
            ({"model": "fm", "lr": 0.02, "embedding_dim": 32}, "stopped", None),
            ({"model": "dcnv2", "lr": 0.01, "embedding_dim": 4}, "failed", None),
        ]
        for params, status, fitness in rows:
            c = a.add_candidate(run.id, params, operator="tpe")
            a.set_candidate_result(c.id, status, fitness=fitness,
                                   objectives={"valid_auc": 0.8} if fitness is not None else None,
                                   reported={"auc": 0.79} if fitness is not None else None)
        a.add_candidate(run.id, rows[0][0], operator="tpe")  # a duplicate: not a trial
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = runner.invoke(app, ["export", "--optuna-storage", storage, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "(4 trials)" in result.stdout
    study = optuna.load_study(study_name="arch", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert study.best_value == 0.012 and study.best_params == rows[1][0]
    assert study.best_trial.user_attrs["test_metrics_reported_only"] == {"auc": 0.79}
    frame = study.trials_dataframe()  # what optuna-dashboard and Optuna's plots read
    assert len(frame) == 4 and {"params_model", "params_lr", "value"} <= set(frame.columns)
    again = runner.invoke(app, ["export", "--optuna-storage", storage, "--db", str(db)])
    assert again.exit_code == 2 and "already exists" in again.output
