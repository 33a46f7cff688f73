"""Where the standard path's training time goes: py-spy samples inside Lightning's training epoch loop, by category.

    pip install py-spy
    py-spy record --format raw -r 200 -o prof.txt -- genre-torch fit --config configs/music_genre.yaml \
        --trainer.max_epochs 20 --test_after_fit false
    python scripts/profile_summary.py prof.txt

Each sample counts for the innermost frame that says what it is doing (model, autograd, optimiser, data, Lightning);
then the Lightning functions that were innermost most often.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

LIGHTNING = "Lightning's own Python (loop, closure, hook dispatch, logging)"
RULES = [  # (substring of a frame, category)
    ("genre_torch/core/training/losses.py", "forward: model and loss"),
    ("genre_torch/core/models/", "forward: model and loss"),
    ("torch/nn/", "forward: model and loss"),
    ("torch/autograd/", "backward (autograd)"),
    ("torch/optim/", "optimiser (fused Adam, zero_grad)"),
    ("genre_torch/core/data/datamodule.py", "batches (index slices of the resident tensors)"),
    ("count (genre_torch", "epoch sums of training loss and accuracy"),
    ("pytorch_lightning/", LIGHTNING),
    ("lightning_fabric/", LIGHTNING),
    ("genre_torch/", "other genre_torch code"),
]


def main(path: str) -> None:
    """Print the categories' shares and the top Lightning functions."""
    shares, lightning, total = Counter(), Counter(), 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        frames, n = stack.split(";"), int(count)
        if not any("training_epoch_loop.py" in f for f in frames):
            continue
        total += n
        if any("evaluation_loop.py" in f for f in frames):
            shares["validation loop (every epoch)"] += n
            continue
        for frame in reversed(frames):
            category = next((c for key, c in RULES if key in frame), None)
            if category:
                break
        shares[category or "other"] += n
        if category == LIGHTNING:
            lightning[re.sub(r" \(.*site-packages/", " (", re.sub(r":\d+\)$", ")", frame))] += n
    for category, n in shares.most_common():
        print(f"{100 * n / total:5.1f} %  {category}")
    print(f"({total} samples in the training epoch loop)\n\ninnermost Lightning functions:")
    for name, n in lightning.most_common(8):
        print(f"{100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
