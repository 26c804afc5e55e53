"""Rows of a dataset as users have it: a JSONL or Parquet file, or a Hugging Face `datasets` folder.

Folders, read with the `datasets` library:
- a `save_to_disk` folder: one split (`state.json` + `*.arrow`) or a `DatasetDict`
  (`dataset_dict.json` + a folder per split);
- Parquet shards as the Hub lays them out and `huggingface_hub` caches them
  (`data/train-00000-of-00001.parquet`, `main/test-00000-of-00001.parquet`, `test.parquet`, or the
  `refs/convert/parquet` layout `train/0000.parquet`), found anywhere under the folder; a file's
  split is its name before `-NNNNN-of-NNNNN` (or its folder's name for `NNNN.parquet`), and the
  shards of one split are read in name order.
`split` picks one; it may be omitted when the folder holds only one. Every error is one line
naming the path (and the row where a row is at fault): `ConfigError`.

Also the `answer_from` rule: `boxed` reduces a worked solution (MATH's `solution`) to the contents
of its last `\\boxed{}` (or `\\fbox{}`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shared.configio import ConfigError
from shared.tasks.boxed import last_boxed

Rows = list[tuple[str, dict[str, Any]]]
_SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}$")


def read_rows(path: str | Path, split: str | None = None) -> Rows:
    """Rows of `path` as (where, row): `where` is `file:line` (JSONL), `file:row N` (Parquet, from
    1) or `folder[split]:row N` (a dataset folder), so an error names the row. Raises ConfigError."""
    p = Path(path)
    if p.is_dir():
        return _folder_rows(p, split)
    if split is not None:
        raise ConfigError(f"{p}: split {split!r} given, but a single file has no splits (use a dataset folder)")
    try:
        if p.suffix == ".parquet":
            import pyarrow.parquet as pq

            return [(f"{p}:row {i}", row) for i, row in enumerate(pq.read_table(p).to_pylist(), 1)]
        lines = p.read_text().splitlines()
    except Exception as err:  # missing file, not Parquet, unreadable, not UTF-8: all name the file
        raise ConfigError(f"{p}: cannot read dataset: {type(err).__name__}: {err}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append((f"{p}:{n}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise ConfigError(f"{p}:{n}: not JSON: {err.msg}") from None
    return rows


def _folder_rows(folder: Path, split: str | None) -> Rows:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{folder}: reading a dataset folder needs the `datasets` package "
                          "(pip install 'dashrl[tasks]')") from None
    datasets.disable_progress_bars()
    try:
        if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
            ds, name = _saved(datasets.load_from_disk(str(folder)), folder, split)
        else:
            files = _parquet_splits(folder)
            name = _pick(folder, split, sorted(files))
            ds = datasets.Dataset.from_parquet([str(f) for f in files[name]], keep_in_memory=True)
    except ConfigError:
        raise
    except Exception as err:  # a corrupt shard, an unreadable folder: one line naming the folder
        raise ConfigError(f"{folder}: cannot read dataset: {type(err).__name__}: {err}") from None
    return [(f"{folder}[{name}]:row {i}", row) for i, row in enumerate(ds.to_list(), 1)]


def _saved(obj: Any, folder: Path, split: str | None) -> tuple[Any, str]:
    """(dataset, split name) of a `save_to_disk` folder: a DatasetDict's chosen split, or the one split."""
    if hasattr(obj, "keys"):  # DatasetDict
        name = _pick(folder, split, sorted(obj.keys()))
        return obj[name], name
    own = str(obj.split) if obj.split is not None else None
    if split is not None and own is not None and split != own:
        raise ConfigError(f"{folder}: no split {split!r} (this save_to_disk folder holds one split, {own!r})")
    return obj, split or own or "all"


def _parquet_splits(folder: Path) -> dict[str, list[Path]]:
    """Split name -> its Parquet shards (name order) under `folder`."""
    out: dict[str, list[Path]] = {}
    for f in sorted(folder.rglob("*.parquet")):
        m = _SHARD.match(f.stem)
        name = m["split"] if m else (f.parent.name if f.stem.isdigit() else f.stem)
        out.setdefault(name, []).append(f)
    if not out:
        raise ConfigError(f"{folder}: not a dataset folder (no dataset_dict.json, state.json or *.parquet in it)")
    return out


def _pick(folder: Path, split: str | None, names: list[str]) -> str:
    if split is None:
        if len(names) == 1:
            return names[0]
        raise ConfigError(f"{folder}: holds splits {names}; choose one with `split`")
    if split not in names:
        raise ConfigError(f"{folder}: no split {split!r} (has {names})")
    return split


def reference_answer(value: Any, answer_from: str, where: str, key: str) -> str:
    """The reference answer of a row's answer value under `answer_from` (`field` or `boxed`)."""
    text = str(value)
    if answer_from == "field":
        return text
    boxed = last_boxed(text)
    if not boxed:
        raise ConfigError(f"{where}: {key!r} has no \\boxed{{}} answer (answer_from: boxed)")
    return boxed
