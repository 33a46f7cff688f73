"""The research core: dataset spec -> clean frame -> Preprocessor -> tensors -> backbone -> GenreClassifier -> CLI.

Three wings: data/ (specs, cleaning, splits, preprocessing, the datamodule), models/ (backbones, the registry) and
training/ (the LightningModule, the CLI, losses, schedules, the fast path, checkpoints, runs). Imports run
training -> data and training -> models only. Nothing here imports genre_torch.tools (prediction, export, reports,
data acquisition, Spark, search). compat.py lets class paths of older checkpoints and configs import.
"""

from genre_torch.core import compat

compat.install()
