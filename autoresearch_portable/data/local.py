"""Local text as a dataset: `arp prepare --dataset PATH`.

PATH is a file or a folder (searched recursively, files in sorted order) of:

* `.txt` — documents separated by one or more blank lines; a file with no blank line at all holds
  one document per line. Leading/trailing whitespace of each document is dropped.
* `.jsonl` — one JSON object per line with a string field `text` (blank lines are skipped).
* `.parquet` — a string column `text`.

Validation: inside a folder, files whose name starts with `val`/`valid` (e.g. `val.txt`,
`valid-01.jsonl`) or contains `validation` are the validation split and every other file is
training data. Otherwise the last 5% of the documents (at least one) are held out for validation.

The dataset is named `local-<stem>-<8 hex of the absolute path>`; vocab 4096 and sequence length
1024 unless the data is too small: the vocabulary shrinks (power of two, at least 512) when the
training text is under ~1 MB, and the sequence length halves (down to 32) until the validation
split fills at least 4 rows. Both are recorded in the metadata.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from autoresearch_portable.data.common import LOCAL_SUFFIXES, LOCAL_VOCAB_SIZE, MIN_VAL_ROWS, DataError
from autoresearch_portable.data.packing import count_rows

VAL_FRACTION = 0.05
_VAL_NAME = re.compile(r"^(val|valid)([-_.\d]|$)|validation", re.IGNORECASE)
_BLANK = re.compile(r"\n[ \t\r\f\v]*\n")


def is_val_file(path: Path) -> bool:
    return bool(_VAL_NAME.search(path.name))


def source_files(source: Path) -> list[Path]:
    if source.is_file():
        if source.suffix.lower() not in LOCAL_SUFFIXES:
            raise DataError(f"{source}: unsupported file type (use .txt, .jsonl or .parquet)")
        return [source]
    files = sorted(
        p for p in source.rglob("*")
        if p.is_file() and p.suffix.lower() in LOCAL_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DataError(f"{source}: no .txt, .jsonl or .parquet files found")
    return files


def fingerprint(source: Path) -> list[list]:
    """What the prepared data was built from: (path, size, mtime_ns) of every source file."""
    out = []
    for p in source_files(source):
        st = p.stat()
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def read_docs(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
        text = text.replace("\r\n", "\n")
        parts = _BLANK.split(text) if _BLANK.search(text) else text.split("\n")
        return [d.strip() for d in parts if d.strip()]
    if suffix == ".jsonl":
        docs = []
        with open(path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise DataError(f"{path} line {lineno}: not valid JSON") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise DataError(f"{path} line {lineno}: no string field 'text'")
                if obj["text"].strip():
                    docs.append(obj["text"])
        return docs
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as e:
            raise DataError(f"{path}: not a readable parquet file ({type(e).__name__})") from None
        if "text" not in pf.schema_arrow.names:
            raise DataError(f"{path}: no 'text' column")
        docs = []
        for rg in range(pf.num_row_groups):
            col = pf.read_row_group(rg, columns=["text"]).column("text").to_pylist()
            docs.extend(t for t in col if isinstance(t, str) and t.strip())
        return docs
    raise DataError(f"{path}: unsupported file type")


def split_docs(source: Path) -> tuple[list[str], list[str], dict]:
    """(train docs, val docs, how the split was made)."""
    files = source_files(source)
    val_files = [p for p in files if is_val_file(p)] if source.is_dir() else []
    if val_files and len(val_files) < len(files):
        train = [d for p in files if p not in val_files for d in read_docs(p)]
        val = [d for p in val_files for d in read_docs(p)]
        how = {"validation": "files", "val_files": [str(p.relative_to(source)) for p in val_files]}
        if not val:
            raise DataError(f"{source}: the validation file(s) hold no documents")
        if not train:
            raise DataError(f"{source}: the training files hold no documents")
        return train, val, how
    docs = [d for p in files for d in read_docs(p)]
    if len(docs) < 2:
        raise DataError(f"{source}: need at least 2 documents (found {len(docs)})")
    n_val = max(1, int(len(docs) * VAL_FRACTION))
    return docs[:-n_val], docs[-n_val:], {"validation": f"last {n_val} of {len(docs)} documents"}


def local_vocab_size(train_bytes: int) -> int:
    """4096 for >= ~1 MB of training text, else a power of two ~ bytes/256, at least 512."""
    v = LOCAL_VOCAB_SIZE
    while v > 512 and train_bytes < v * 256:
        v //= 2
    return v


def local_seq_len(val_lengths, seq_len: int) -> int:
    """Halve seq_len (down to 32) until the validation packing yields MIN_VAL_ROWS full rows."""
    while seq_len > 32 and count_rows(val_lengths, seq_len) < MIN_VAL_ROWS:
        seq_len //= 2
    return seq_len
