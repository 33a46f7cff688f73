"""Residual MLP, PLR embeddings and the TabM ensemble: settings, numeric-column handling, per-member loss."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from genre_torch.core import models
from genre_torch.core.training.module import GenreClassifier


def test_plr_embeds_only_the_leading_numeric_columns() -> None:
    net = models.build("PLRMLP", 6, 3, n_numeric=2, d_embedding=4, n_frequencies=5, hidden_dims=[8])
    assert net.input.out_features == 2 * 4 + 4
    x = torch.randn(3, 6)
    assert net.input(x).shape == (3, 12) and torch.equal(net.input(x)[:, 8:], x[:, 2:])


def test_plr_frequencies_are_a_normal_truncated_at_three_sigma() -> None:
    torch.manual_seed(0)
    sigma = 0.5
    frequencies = models.build("PLRMLP", 40, 3, n_frequencies=500, sigma=sigma, hidden_dims=[4]).input.embed.frequencies
    assert float(frequencies.abs().max()) <= 3 * sigma  # 20000 plain normal draws would pass 3 sigma about 54 times
    assert abs(float(frequencies.std()) - sigma * 0.9866) < 0.01  # the truncated normal's standard deviation


def test_resmlp_depth_and_embed() -> None:
    net = models.build("ResMLP", 5, 4, width=16, depth=2, norm="layer", dropout=0.0)
    assert len(net.blocks) == 2 and net.embed(torch.randn(2, 5)).shape == (2, 16)


def test_tabm_mean_probability_and_per_member_loss() -> None:
    torch.manual_seed(0)
    backbone = {"class_path": "TabM", "init_args": {"k": 4, "hidden_dims": [16], "embedding": True}}
    model = GenreClassifier(7, 3, num_numeric=3, backbone=backbone)
    x, y = torch.randn(10, 7), torch.randint(0, 3, (10,))
    model.eval()  # no dropout: every call below sees the same members
    members = model.backbone.forward_members(x)
    assert members.shape == (10, 4, 3)
    mean_prob = members.softmax(-1).mean(1)
    assert torch.allclose(model(x).exp(), mean_prob, atol=1e-6)  # forward = log of the mean member probability
    loss, _ = model.training_loss(x, y)
    expected = sum(F.cross_entropy(members[:, i], y) for i in range(4)) / 4
    assert math.isclose(float(loss), float(expected), rel_tol=1e-5)


def test_tabm_mini_has_adapters_only_in_the_first_layer() -> None:
    net = models.build("TabM", 5, 2, k=3, hidden_dims=[8, 8], mini=True)
    adapters = [m.r is not None for m in net.body if hasattr(m, "r")]
    assert adapters == [True, False]


def test_training_step_takes_a_plain_dataloader_batch(data_env) -> None:
    # a TensorDataset through a DataLoader arrives as [x, y] (a list), not as a group of batches
    x, y = torch.randn(64, 7), torch.randint(0, 3, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    model = GenreClassifier(7, 3)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, loader)
    assert trainer.global_step == 4
