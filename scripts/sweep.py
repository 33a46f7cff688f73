"""The original notebook studies as a rerunnable sweep: MLP depth x width x activation on one dataset.

python scripts/sweep.py --dataset music_genre [--depths 1 2 3] [--widths 16 32 ... 1024]
    [--activations relu leaky_relu tanh sigmoid] [--seed 0] [--max_epochs 200] [--runs_dir runs] [--quick]

Every run is `genre-torch fit --config configs/<dataset>.yaml` with hidden_dims = [width] * depth and
the activation; it logs to TensorBoard under <runs_dir>/sweep_<dataset>/ with its hyperparameters
and final metrics (hp/val_acc, hp/test_acc, hp/test_macro_f1), so the HParams tab compares them:

    tensorboard --logdir runs/sweep_music_genre

The summary ranks by validation accuracy (the best checkpoint's); test accuracy is shown alongside
(each model is tested once, at the end of its fit). --quick runs a 2 x 1 x 2 grid for 1 epoch (CI).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from genre_torch.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = [16, 32, 64, 128, 256, 512, 1024]


def run(dataset: str, depth: int, width: int, activation: str, args: argparse.Namespace) -> dict:
    """Fit one grid point; log its hyperparameters with final metrics for the HParams dashboard."""
    cli = run_cli(
        [
            "fit",
            "--config", str(ROOT / "configs" / f"{dataset}.yaml"),
            "--model.backbone", "MLP",
            "--model.backbone.hidden_dims", str([width] * depth),
            "--model.backbone.activation", activation,
            "--seed_everything", str(args.seed),
            "--trainer.max_epochs", str(1 if args.quick else args.max_epochs),
            "--trainer.enable_progress_bar", "false",
            "--runs_dir", str(Path(args.runs_dir)),
            "--checkpoints_dir", str(Path(args.checkpoints_dir)),
            "--trainer.logger.class_path", "pytorch_lightning.loggers.TensorBoardLogger",
            "--trainer.logger.init_args.save_dir", str(Path(args.runs_dir)),
            "--trainer.logger.init_args.name", f"sweep_{dataset}",
            "--trainer.logger.init_args.default_hp_metric", "false",
        ]
    )  # fmt: skip
    metrics = cli.final_metrics  # of the best checkpoint (whatever early stopping monitored)
    result = {
        "depth": depth,
        "width": width,
        "activation": activation,
        "val_acc": float(metrics["val/acc"]),
        "test_acc": float(metrics["test/acc"]),
        "test_macro_f1": float(metrics["test/macro_f1"]),
        "epochs": cli.trainer.current_epoch,
    }
    hparams = {"depth": depth, "width": width, "activation": activation, "dataset": dataset}
    final = {f"hp/{k}": result[k] for k in ("val_acc", "test_acc", "test_macro_f1", "epochs")}
    cli.trainer.logger.log_hyperparams(hparams, final)
    return result


def best_by(results: list[dict], key: str) -> list[str]:
    """Markdown rows: the best run (by validation accuracy) for each value of `key`."""
    rows = []
    for value in dict.fromkeys(r[key] for r in results):
        r = max((r for r in results if r[key] == value), key=lambda r: r["val_acc"])
        cells = [f"{key}={value}", str(r["depth"]), str(r["width"]), r["activation"]]
        cells += [f"{100 * r['val_acc']:.2f}", f"{100 * r['test_acc']:.2f}", f"{100 * r['test_macro_f1']:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    """Run the grid and print the markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="music_genre")
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--widths", nargs="+", type=int, default=WIDTHS)
    parser.add_argument("--activations", nargs="+", default=["relu", "leaky_relu", "tanh", "sigmoid"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_epochs", type=int, default=200)
    parser.add_argument("--runs_dir", default="runs")
    parser.add_argument("--checkpoints_dir", default="checkpoints/sweep")
    parser.add_argument("--quick", action="store_true", help="2 depths x 1 width x 2 activations, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.depths, args.widths, args.activations = [1, 2], [16], ["relu", "tanh"]
    grid = itertools.product(args.depths, args.widths, args.activations)
    results = [run(args.dataset, d, w, a, args) for d, w, a in grid]
    print(f"\nsweep of {len(results)} MLPs on {args.dataset} (seed {args.seed}); best by validation accuracy\n")
    print("| best for | depth | width | activation | val acc % | test acc % | test macro-F1 % |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(best_by(results, "activation") + best_by(results, "depth")))
    print(f"\ncurves and the HParams tab: tensorboard --logdir {Path(args.runs_dir) / f'sweep_{args.dataset}'}")


if __name__ == "__main__":
    main()
