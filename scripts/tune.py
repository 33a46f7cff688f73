"""Hyperparameter search with Optuna (TPE + median pruning) on validation accuracy only; best config -> YAML.

pip install -e ".[tune]"
python scripts/tune.py --dataset music_genre --features audio [--trials 30] [--timeout 3600]
    [--max_epochs 60] [--out configs/tuned_music_genre_audio.yaml] [--quick]

Each trial trains arch plr_mlp (PLR embeddings + MLP) with AdamW and reports the validation accuracy
after every epoch; unpromising trials are pruned. The test split is never loaded into a model here.
The best trial is written as a complete config: `genre-torch fit --config <out>` retrains it (and
tests it once). Pruning uses a small pytorch_lightning callback: optuna-integration's
PyTorchLightningPruningCallback imports `lightning.pytorch`, which cannot drive a `pytorch_lightning`
Trainer.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import optuna
import pytorch_lightning as pl
import yaml
from pytorch_lightning.callbacks import EarlyStopping

from genre_torch.core.data import GenreDataModule
from genre_torch.core.module import GenreClassifier

ROOT = Path(__file__).resolve().parents[1]


class PruneOnValAcc(pl.Callback):
    """Report val/acc to the trial after every validation epoch; stop the fit when Optuna prunes it."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self.best = trial, 0.0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/acc")
        if trainer.sanity_checking or value is None:
            return
        self.best = max(self.best, float(value))
        self.trial.report(float(value), step=trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned()


def suggest(trial: optuna.Trial) -> dict:
    """The search space: the model section of a config."""
    depth = trial.suggest_int("depth", 1, 4)
    width = trial.suggest_categorical("width", [128, 256, 512])
    return {
        "backbone": {
            "class_path": "genre_torch.core.models.plr.PLRMLP",
            "init_args": {
                "hidden_dims": [width] * depth,
                "dropout": trial.suggest_float("dropout", 0.0, 0.4),
                "sigma": trial.suggest_float("sigma", 0.005, 1.0, log=True),
                "d_embedding": trial.suggest_categorical("d_embedding", [8, 16, 24, 32]),
                "lite": trial.suggest_categorical("lite", [True, False]),
            },
        },
        "optimizer": "adamw",
        "lr": trial.suggest_float("lr", 2e-4, 3e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        "criterion": {
            "class_path": "genre_torch.core.losses.CrossEntropy",
            "init_args": {"label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.1)},
        },
    }


def main() -> None:
    """Run the study and write the best trial as a config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="music_genre")
    parser.add_argument("--features", choices=["audio", "audio+meta"], default="audio")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the whole study")
    parser.add_argument("--max_epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="2 trials of 1 epoch (CI)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.max_epochs = 2, 1
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    data = {"dataset": args.dataset, "features": args.features, "missing_indicators": True}
    dm = GenreDataModule(**data).load()  # encoded once, shared by all trials

    def objective(trial: optuna.Trial) -> float:
        pl.seed_everything(args.seed, verbose=False)
        model = GenreClassifier(dm.num_features, dm.num_classes, dm.num_numeric, **suggest(trial))
        pruner = PruneOnValAcc(trial)
        stop = EarlyStopping("val/acc", mode="max", patience=8)
        trainer = pl.Trainer(
            max_epochs=args.max_epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[pruner, stop],
        )  # fmt: skip
        trainer.fit(model, datamodule=dm)
        return pruner.best

    sampler = optuna.samplers.TPESampler(seed=args.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=optuna.pruners.MedianPruner(3, 5))
    study.optimize(objective, n_trials=args.trials, timeout=args.timeout)
    best = study.best_trial
    base = yaml.safe_load((ROOT / "configs" / f"{args.dataset}.yaml").read_text())
    base["seed_everything"] = args.seed
    base["model"] = suggest(optuna.trial.FixedTrial(best.params))
    base["data"] = {**base.get("data", {}), **data}
    base["early_stopping"] = {"monitor": "val/acc", "mode": "max", "patience": 8}
    base["trainer"]["max_epochs"] = args.max_epochs
    tag = "audio" if args.features == "audio" else "meta"
    out = args.out or ROOT / "configs" / f"tuned_{args.dataset}_{tag}.yaml"
    header = f"# scripts/tune.py: best of {len(study.trials)} trials, validation accuracy {best.value:.4f}\n"
    out.write_text(header + yaml.safe_dump(base, sort_keys=False))
    print(f"best validation accuracy {best.value:.4f} (trial {best.number}); config written to {out}")


if __name__ == "__main__":
    main()
