"""Data layer: the bundled corpus, downloads, local text, the tokenizer, token shards, the loader.

    from autoresearch_portable.data import prepare, load, DATASETS, DataError
    info = prepare("bundled-v2")       # builds once into the user cache; later calls are no-ops
    ds = load("bundled-v2")                                 # (the default, DEFAULT_DATASET)
    batch = next(ds.train_batches(batch_size=8, seed=0))   # int32 (8, ds.seq_len + 1)
    val = ds.val_rows(16)                                   # prefix of the fixed validation stream
    check_usable("bundled-v2")         # cheap re-check (e.g. right before evaluation); DataError if not
"""

from autoresearch_portable.data.common import DATASETS, DEFAULT_DATASET, DataError
from autoresearch_portable.data.loader import Dataset, TrainBatches, check_usable, load

# `prepare` is imported on first use: the builders (the corpus grammar, parquet reading,
# downloads) are not needed by a training run, which only loads a prepared dataset.


def __getattr__(name: str):
    if name == "prepare":
        from autoresearch_portable.data.build import prepare

        return prepare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DATASETS", "DataError", "Dataset", "TrainBatches", "check_usable", "load", "prepare"]
