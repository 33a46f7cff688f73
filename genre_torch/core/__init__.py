"""The research core: dataset spec -> clean frame -> Preprocessor -> tensors -> backbone -> GenreClassifier -> CLI.

Nothing here imports genre_torch.tools (prediction, export, reports, data acquisition, Spark, search).
"""
