"""Tools around the research core: prediction and export, reports, data acquisition and checks, Parquet/Spark
preparation, benchmarks and search. They import genre_torch.core, never the reverse."""
