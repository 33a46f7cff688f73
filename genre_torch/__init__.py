"""genre_torch: learn the genre of a song from its Spotify audio features."""

from genre_torch.data import GenreDataModule
from genre_torch.datasets import SPECS, DatasetSpec
from genre_torch.errors import GenreTorchError
from genre_torch.module import GenreClassifier
from genre_torch.predict import Predictor, load_predictor
from genre_torch.preprocessing import Preprocessor

__all__ = [
    "SPECS",
    "DatasetSpec",
    "GenreClassifier",
    "GenreDataModule",
    "GenreTorchError",
    "Predictor",
    "Preprocessor",
    "load_predictor",
]
