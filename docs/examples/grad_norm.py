"""A callback in one file: log the gradient norm before every optimiser step."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class GradNormLogger(pl.Callback):
    """Logs `train/grad_norm`, the L2 norm of all gradients, once per optimiser step (before any clipping)."""

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False)
