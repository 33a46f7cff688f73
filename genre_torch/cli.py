"""Command line: `genre-torch fit|validate|test ...` through LightningCLI, plus a few tool subcommands."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

from genre_torch.core.data import GenreDataModule
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.lightning_cli import GenreCLI
from genre_torch.core.module import GenreClassifier
from genre_torch.tools.report import TestReport

# subcommands that are not Trainer methods: name -> "module:function" taking the remaining argv
TOOLS: dict[str, str] = {
    "predict": "genre_torch.tools.predict:main",  # replaces LightningCLI's predict: scores raw CSV rows
    "export": "genre_torch.tools.export:main",
    "importance": "genre_torch.tools.importance:main",
    "data": "genre_torch.tools.datacli:main",  # download (verified) / check a dataset
    "prepare": "genre_torch.tools.prepare:main",  # clean, split, encode to Parquet with the pandas or Spark engine
}


def run_cli(args: list[str] | None = None, run: bool = True) -> GenreCLI:
    """Build and run the LightningCLI (args default to sys.argv; run=False only builds model, data, trainer)."""
    return GenreCLI(
        GenreClassifier,
        GenreDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [TestReport()]},  # always on: the test report (genre_torch/report.py)
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the `genre-torch` console script."""
    argv = sys.argv[1:] if args is None else list(args)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    logging.getLogger("lightning_fabric.utilities.seed").setLevel(logging.WARNING)  # the seed is in config.yaml
    try:
        if argv and argv[0] in TOOLS:
            module, func = TOOLS[argv[0]].split(":")
            getattr(importlib.import_module(module), func)(argv[1:])
        else:
            run_cli(args)  # None lets LightningCLI read sys.argv itself
    except GenreTorchError as e:
        print(f"genre-torch: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
