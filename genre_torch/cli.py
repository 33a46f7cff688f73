"""The `genre-torch` command: fit/validate/test through LightningCLI, plus the tool subcommands.

Only the standard library is imported here, so `genre-torch --help` answers at once; the heavy stack is
imported by the subcommand that needs it.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genre_torch.core.training.lightning_cli import GenreCLI

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "train a model on a dataset (early stopping on validation), then test it once",
    "validate": "evaluate a checkpoint on the validation split",
    "test": "evaluate a checkpoint on the test split and write the test report",
}
# subcommands that are not Trainer methods: name -> ("module:function" taking the remaining argv, description)
TOOLS: dict[str, tuple[str, str]] = {
    "predict": ("genre_torch.tools.predict:main", "score raw CSV rows with a checkpoint: genre, probability, top 3"),
    "export": ("genre_torch.tools.export:main", "write a checkpoint as ONNX or TorchScript, preprocessing included"),
    "info": ("genre_torch.tools.info:main", "print a checkpoint's provenance (code, data, machine), settings, metrics"),
    "importance": ("genre_torch.tools.importance:main", "permutation importance of each column on the test split"),
    "data": ("genre_torch.tools.datacli:main", "download a dataset (verified) or check a CSV against its spec"),
    "prepare": ("genre_torch.tools.prepare:main", "clean, split and encode a dataset to Parquet (pandas or Spark)"),
    "tune": ("genre_torch.tools.search:tune", "Optuna search (TPE, pruning) over fit options; N workers, resumable"),
    "sweep": ("genre_torch.tools.search:sweep", "every cell of a grid of fit options once; N workers, summary"),
}
# Notices a user cannot act on: dependencies' deprecations and Lightning's hints about DataLoader workers,
# which do not apply to in-memory tensors
QUIET = [
    (r".*does not have many workers.*", Warning),
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated.*", Warning),
    (r".*", DeprecationWarning),
    (r".*", FutureWarning),
    (r"Checkpoint directory .* exists and is not empty.*", Warning),  # a resumed run continues in its folder
    (r"The dirpath has changed from .*", Warning),  # `test` of a checkpoint from another run
    (r".*LightningCLI's args parameter is intended to run from within Python.*", Warning),
]
QUIET_LOGS = False  # set by main(): Lightning's banners, tips and restore notices off


def help_text() -> str:
    """The top-level help: every subcommand with one line."""
    width = max(map(len, [*LIGHTNING_SUBCOMMANDS, *TOOLS]))
    rows = [*LIGHTNING_SUBCOMMANDS.items(), *((name, desc) for name, (_, desc) in TOOLS.items())]
    lines = [
        "usage: genre-torch SUBCOMMAND [options]   (genre-torch SUBCOMMAND --help for its options)",
        "",
        "Learn the genre of a song from its Spotify audio features (PyTorch Lightning).",
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {desc}" for name, desc in rows),
        "",
        "example: genre-torch fit --config configs/music_genre.yaml",
    ]
    return "\n".join(lines)


def run_cli(args: list[str] | None = None, run: bool = True) -> GenreCLI:
    """Build and run the LightningCLI (args default to sys.argv; run=False only builds model, data, trainer)."""
    from genre_torch.core.data import GenreDataModule
    from genre_torch.core.training.lightning_cli import GenreCLI
    from genre_torch.core.training.module import GenreClassifier
    from genre_torch.tools.report import TestReport

    if QUIET_LOGS:  # after the import: Lightning sets its loggers to INFO when it is imported
        for name in ("pytorch_lightning", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # and replaces formatwarning, printing `path:line: message` for every file whose path holds "lightning"
        warnings.formatwarning = _one_line_warning
    return GenreCLI(
        GenreClassifier,
        GenreDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        test_callbacks=[TestReport()],  # the test report (tools/report.py), on every test run
        parser_kwargs={"prog": "genre-torch"},
        subclass_mode_model=True,
    )


def quiet_console() -> None:
    """Real warnings once, each on one line; no Lightning banners, tips or repeated restore notices."""
    for message, category in QUIET:
        warnings.filterwarnings("ignore", message=message, category=category)
    warnings.formatwarning = _one_line_warning  # formatting only: warnings recorded by a caller stay recorded
    global QUIET_LOGS
    QUIET_LOGS = True


def _one_line_warning(message: Any, category: type, filename: str, lineno: int, line: str | None = None) -> str:
    return "warning: " + " ".join(str(message).split()) + "\n"


def main(args: list[str] | None = None) -> None:
    """Entry point of the `genre-torch` console script."""
    argv = sys.argv[1:] if args is None else list(args)
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text())
        raise SystemExit(0 if argv else 2)
    quiet_console()
    from genre_torch.core.errors import GenreTorchError
    from genre_torch.core.training import compile_cache, signals

    previous = signals.watch()
    fresh_cache = compile_cache.new_cache_folder()  # importing Lightning creates torch's compile cache folder
    finished = False
    try:
        if argv[0] in TOOLS:
            from genre_torch.tools import parsers

            builder = getattr(parsers, argv[0], None)
            if builder is not None:  # help and usage errors before the tool imports torch and pandas
                parser = builder()
                parser.parse_known_args(argv[1:]) if argv[0] in parsers.KNOWN_ARGS_ONLY else parser.parse_args(argv[1:])
            module, func = TOOLS[argv[0]][0].split(":")
            getattr(importlib.import_module(module), func)(argv[1:])
        elif argv[0] in LIGHTNING_SUBCOMMANDS or argv[0].startswith("-"):
            run_cli(argv)
        else:
            known = ", ".join([*LIGHTNING_SUBCOMMANDS, *TOOLS])
            raise GenreTorchError(f"unknown subcommand {argv[0]!r}; known: {known} (see `genre-torch --help`)")
        signals.check("as it ended; run the same command again")  # still not a complete result
        finished = True
    except GenreTorchError as e:
        print(f"genre-torch: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (KeyboardInterrupt, SystemExit, signals.Interrupted) as e:  # Lightning ends a SIGTERM as SystemExit
        stop = signals.interruption(e)
        if stop is None:
            raise
        print(stop.line, file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    except Exception as e:  # Lightning's checks of its options that run once fit has begun (limit_val_batches)
        lightning = sys.modules.get("lightning_fabric.utilities.exceptions")
        if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:  # any path the command was given or derived
            name = str(e.filename)
            shown = name if len(name) <= 80 else f"{name[:40]}...{name[-30:]} ({len(name)} characters)"
            message = f"file name too long: {shown}; use a shorter name or a shallower folder"
        elif lightning is not None and isinstance(e, lightning.MisconfigurationException):
            message = " ".join(str(e).split())
        else:
            raise
        print(f"genre-torch: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if not finished:  # a failed command leaves no compile cache folder it created (a full $TMPDIR)
            compile_cache.discard(fresh_cache)
        signals.restore(previous)


if __name__ == "__main__":  # `python -m genre_torch.cli`: run the importable module, whose QUIET_LOGS others read
    from genre_torch import cli

    cli.main()
