"""Measurements behind scripts/bench_speed.py: plain loop vs Lightning (standard and fast path), inference, fit."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from genre_torch.cli import run_cli
from genre_torch.core.data import GenreDataModule, TensorBatches
from genre_torch.core.training.lightning_cli import GenreCLI
from genre_torch.core.training.module import GenreClassifier


class EpochTimer(pl.Callback):
    """Wall and CPU time of each training epoch: batches only ("train") and the whole epoch ("epoch").

    "train" ends where validation starts, so the timer needs no batch hook (the fast path refuses those).
    """

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {k: [] for k in ("train_wall", "train_cpu", "epoch_wall", "epoch_cpu")}
        self.start: tuple[float, float] | None = None

    @staticmethod
    def now() -> tuple[float, float]:
        """(wall, process CPU) seconds."""
        return time.perf_counter(), time.process_time()

    def _close_epoch(self) -> None:
        if self.start is not None:
            wall, cpu = self.now()
            self.times["epoch_wall"].append(wall - self.start[0])
            self.times["epoch_cpu"].append(cpu - self.start[1])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch()  # an epoch ends where the next one starts: validation, checkpoints, logging included
        self.start = self.now()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.start is None:
            return
        on_gpu = trainer.strategy.root_device.type == "cuda"
        if on_gpu:
            torch.cuda.synchronize()  # the epoch's queued GPU work is part of its time
        wall, cpu = self.now()
        self.times["train_wall"].append(wall - self.start[0])
        self.times["train_cpu"].append(cpu - self.start[1])
        if on_gpu:  # NVML's busy share over its last sample period (~1/6 s), outside the timed span
            self.times.setdefault("gpu_util", []).append(gpu_utilization())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch()


def gpu_utilization() -> float:
    """Percent of the last sample period in which the GPU ran a kernel (NVML or nvidia-smi; NaN if neither)."""
    try:
        return float(torch.cuda.utilization())  # needs the nvidia-ml-py package
    except Exception:  # noqa: BLE001 (no NVML binding: ask the driver's tool)
        try:
            cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
            return float(subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split()[0])
        except Exception:  # noqa: BLE001
            return float("nan")


def build_cli(config: str, batch_size: int, epochs: int, workdir: Path, extra: list[str] = ()) -> GenreCLI:
    """The model, data module and trainer `genre-torch fit` builds, not yet run, writing under workdir."""
    return run_cli(
        [
            *("--config", config, "--data.batch_size", str(batch_size), "--trainer.max_epochs", str(epochs)),
            *("--trainer.enable_progress_bar", "false", "--early_stopping.patience", "100000"),
            *("--lr_scheduler", "null"),  # the plain loop has none: all three sides do the same work per step
            *("--runs_dir", str(workdir / "runs"), "--checkpoints_dir", str(workdir / "checkpoints")),
            *("--num_threads", str(torch.get_num_threads())),
            *extra,  # after --config, so that the config cannot override them
        ],
        run=False,
    )


def plain_loop(
    model: GenreClassifier, dm: GenreDataModule, epochs: int, device: str = "cpu", bf16: bool = False
) -> dict[str, list[float]]:
    """A hand-written loop on a copy of the model: same optimiser, criterion, batch transform and batches."""
    net = copy.deepcopy(model.backbone).to(device).train()
    criterion = copy.deepcopy(model.criterion).to(device)
    transform = copy.deepcopy(model.batch_transform)
    if model.hparams.get("compile"):
        net.compile()
    opt = model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    opt = type(opt)(net.parameters(), **opt.defaults)  # the same optimiser class and settings, on the copy
    x, y = (t.to(device) for t in dm.tensors["train"])
    xv, yv = (t.to(device) for t in dm.tensors["val"])
    times: dict[str, list[float]] = {k: [] for k in ("train_wall", "train_cpu", "epoch_wall", "epoch_cpu")}
    batches = TensorBatches(x, y, dm.batch_size, True, dm.shuffle_seed)
    autocast = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        start = EpochTimer.now()
        for xb, yb in batches:
            target = yb
            if transform is not None:
                xb, target = transform(xb, yb)
            with autocast:
                loss = criterion(net(xb), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync()
        train = EpochTimer.now()
        net.eval()
        with torch.no_grad(), autocast:
            correct = sum(int((net(xb).argmax(1) == yb).sum()) for xb, yb in TensorBatches(xv, yv, dm.eval_batch_size))
        net.train()
        end = EpochTimer.now()
        assert 0 <= correct <= len(yv)
        times["train_wall"].append(train[0] - start[0])
        times["train_cpu"].append(train[1] - start[1])
        times["epoch_wall"].append(end[0] - start[0])
        times["epoch_cpu"].append(end[1] - start[1])
    return {**times, "rows": [len(x)], "steps": [len(batches)]}


def lightning_epochs(cli: GenreCLI) -> dict[str, list[float]]:
    """Fit the CLI's model with an EpochTimer attached; its epoch times, rows and optimiser steps per epoch."""
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    x, _ = cli.datamodule.tensors["train"]
    return {**timer.times, "rows": [len(x)], "steps": [cli.trainer.global_step // max(cli.trainer.current_epoch, 1)]}


def compare(
    config: str,
    batch_size: int,
    epochs: int,
    workdir: Path,
    gpu_precision: str | None = None,
    repeat: int = 1,
    compile: bool = False,
    group: int = 64,
) -> tuple[dict[str, dict], GenreCLI]:
    """One round: the plain loop, Lightning's standard path, then the fast path (--data.batches_per_step group).

    All three start from the same initial weights (seed_everything) on the same tensors (GPU if asked).
    repeat > 1 trains on the training rows repeated that many times (a larger set of the same shape).
    """
    gpu = ["--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.precision", gpu_precision]
    extra = (gpu if gpu_precision else []) + (["--model.compile", "true"] if compile else [])
    out: dict[str, dict] = {}
    for name, more in (("plain", []), ("default", []), ("fast", ["--data.batches_per_step", str(group)])):
        cli = build_cli(config, batch_size, epochs, workdir / name, [*extra, *more])
        cli.datamodule.setup("fit")
        if repeat > 1:
            x, y = cli.datamodule.tensors["train"]
            cli.datamodule.tensors["train"] = (x.repeat(repeat, 1), y.repeat(repeat))
        if name == "plain":
            device = "cuda" if gpu_precision else "cpu"
            out[name] = plain_loop(cli.model, cli.datamodule, epochs, device, gpu_precision == "bf16-mixed")
        else:
            out[name] = lightning_epochs(cli)
    return out, cli


@torch.inference_mode()
def inference(cli: GenreCLI, repeats: int = 5, device: str = "cpu") -> dict[str, float]:
    """Rows/s of the trained model on every encoded row: batches of 4096, one full batch, and Predictor.predict."""
    from genre_torch.tools.predict import Predictor

    device = torch.device(device)
    model, dm = cli.model.to(device).eval(), cli.datamodule  # Lightning leaves a fitted model on the CPU
    x = torch.cat([dm.tensors[k][0] for k in ("train", "val", "test")]).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    out: dict[str, float] = {}
    for name, bs in (("model batch 4096", 4096), ("model full batch", len(x))):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(x), bs):
                model(x[i : i + bs]).softmax(-1)
            sync()
            best = min(best, time.perf_counter() - start)
        out[name] = len(x) / best
    if device.type != "cpu":
        return out
    start = time.perf_counter()
    Predictor(model.backbone, dm.preprocessor, dm.spec).predict(dm.frame)
    out["Predictor.predict (clean + encode + score + top-3)"] = len(dm.frame) / (time.perf_counter() - start)
    return out


def _run(cmd: list[str], cwd: Path) -> tuple[str, float, float, float]:
    """Run a command; (stdout, wall seconds, peak RSS MiB, CPU seconds) of that child alone."""
    cwd.mkdir(parents=True, exist_ok=True)
    out_file = cwd / "stdout.txt"
    start = time.perf_counter()
    with open(out_file, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_file.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{text}")
    return text, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


STARTUP = """
import json, sys, time, yaml
start = time.perf_counter()
from genre_torch.core.data import GenreDataModule
import genre_torch.core.training.lightning_cli  # torch, Lightning (and torch._dynamo through it), torchmetrics
imported = time.perf_counter()
GenreDataModule(**yaml.safe_load(open(sys.argv[1]))["data"]).load()
print(json.dumps({"import_s": imported - start, "load_s": time.perf_counter() - imported}))
"""


def end_to_end(config: str, workdir: Path, quick: bool = False, more_configs: list[str] = ()) -> dict[str, Any]:
    """Wall time of `genre-torch fit --config CONFIG` to early stop incl. test, and its startup on its own."""
    exe = Path(sys.executable).with_name("genre-torch")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "genre_torch.cli"]
    configs = [arg for c in (config, *more_configs) for arg in ("--config", str(Path(c).resolve()))]
    args = ["fit", *configs] + (["--trainer.max_epochs", "2"] if quick else [])
    text, wall, rss, cpu = _run(cmd + args, workdir)
    acc = re.search(r"test accuracy: ([0-9.]+)", text)
    ran = re.findall(r"^epoch (\d+)/", text, re.M)  # the epoch lines (last.ckpt is the newest *saved* epoch)
    epochs = int(ran[-1]) if ran else None
    startup, *_ = _run([sys.executable, "-c", STARTUP, str(Path(config).resolve())], workdir / "startup")
    return {
        "command": " ".join(["genre-torch", *args]),
        "wall_s": wall,
        "cpu_s": cpu,
        "epochs": epochs,
        "test_accuracy": float(acc.group(1)) if acc else None,
        "peak_rss_mib": rss,
        **json.loads(startup.strip().splitlines()[-1]),
    }
