"""The published layouts of NATS-Bench and NAS-Bench-201, read one architecture at a time.

- a NATS-Bench "simple" folder (``NATS-tss-v1_0-3ffb9-simple/``): ``meta.pickle.pbz2``
  with ``meta_archs``, and one ``{index:06d}.pickle.pbz2`` per arch holding
  ``{hp: ArchResults.state_dict()}``: read one arch file at a time;
- a NATS-Bench single file (``NATS-tss-v1_0-3ffb9.pickle.pbz2``): ``meta_archs``,
  ``arch2infos`` ({index: {hp: state}}) and ``evaluated_indexes``;
- a NAS-Bench-201 file (``NAS-Bench-201-v1_0-e61699.pth``): the same dict, each
  arch's results under ``less`` (12 epochs) and ``full`` (200 epochs).

Every source file is read once and hashed as it is read, for the release's provenance: the
bytes parsed are the bytes recorded.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nasforge.errors import InputError, MissingInputError
from nasforge.imports.unpickle import BENCHMARK_LIMIT, META_LIMIT, read_pickle, read_pth

_ARCH_FILE = re.compile(r"^([0-9]+)\.pickle\.pbz2$")
_NB201_HPS = {"less": "12", "full": "200"}
_BUDGET = re.compile(r"[0-9]{1,4}")


@dataclass
class Source:
    """One published benchmark: its layout, its files and the arch strings in index order."""

    path: Path
    layout: str  # "nats-simple", "nats-file" or "nb201"
    meta_archs: list[str]
    files: list[dict] = field(default_factory=list)  # provenance, in the order read
    _single: dict | None = None
    weights: bool = False  # rebuild the trained weights of "full" files (else they are skipped unread)

    def archs(self) -> Iterator[tuple[int, dict[str, dict]]]:
        """(index, {hp: ArchResults state}) for every arch the source holds, in index order."""
        if self.layout == "nats-simple":
            for index, path in _arch_files(self.path):
                data, record = read_pickle(path, weights=self.weights)
                self.files.append(record)
                if not isinstance(data, dict):
                    raise InputError(f"{path}: holds a {type(data).__name__}, expected NATS-Bench's {{hp: results}} dict")
                yield index, _by_hp(data, path)
            return
        infos = self._single["arch2infos"]
        for index in sorted(infos):
            yield int(index), _by_hp(infos.pop(index), self.path)  # popped: each arch's objects freed once converted


def _by_hp(data: dict, path: Path) -> dict[str, dict]:
    out = {}
    for hp, state in data.items():
        hp = _NB201_HPS.get(hp, hp)
        if isinstance(hp, bool) or not isinstance(hp, (str, int)) or not _BUDGET.fullmatch(str(hp)):
            # the budget names a folder of the import's staging area: digits only, never a path
            raise InputError(f"{path}: budget key {hp!r} is not a NATS-Bench budget (epochs as digits: '01', '12', "
                             "'90', '200'); not a NATS-Bench file")
        if not (isinstance(state, dict) and isinstance(state.get("all_results"), dict)
                and isinstance(state.get("dataset_seed"), dict)):
            raise InputError(f"{path}: budget {hp!r} holds no ArchResults state (all_results, dataset_seed); "
                             "not a NATS-Bench file")
        out[str(hp)] = state
    return out


def _arch_files(folder: Path) -> list[tuple[int, Path]]:
    """Each arch file by its index; two files naming one arch (``000001`` and ``0000001``) are refused."""
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _ARCH_FILE.match(p.name)))
    for (a, first), (b, second) in itertools.pairwise(found):
        if a == b:
            raise InputError(f"{folder}: {first.name} and {second.name} both hold arch {a}; keep NATS-Bench's "
                             f"{a:06d}.pickle.pbz2 and remove the other")
    return found


def open_source(path: Path | str, weights: bool = False) -> Source:
    """Detect the layout of ``path`` and read its meta data (for a single file: all of it); ``weights``:
    rebuild the trained weights a "full" file carries."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file or folder; give a NATS-Bench simple folder, a NATS-Bench "
                                ".pickle.pbz2 file or a NAS-Bench-201 .pth file")
    if path.is_dir():
        meta_path = path / "meta.pickle.pbz2"
        if not meta_path.is_file():
            raise MissingInputError(f"{meta_path}: missing; a NATS-Bench simple folder holds meta.pickle.pbz2 and "
                                    "one {index:06d}.pickle.pbz2 per arch")
        meta, record = read_pickle(meta_path, limit=META_LIMIT)
        if not (isinstance(meta, dict) and isinstance(meta.get("meta_archs"), list)):
            raise InputError(f"{meta_path}: no 'meta_archs' list; not a NATS-Bench meta file")
        source = Source(path, "nats-simple", [str(a) for a in meta["meta_archs"]], weights=weights)
        source.files.append(record)
        return source
    if path.name.endswith(".pth"):
        (data, record), layout = read_pth(path), "nb201"
    elif path.name.endswith((".pickle.pbz2", ".pbz2", ".pickle")):
        (data, record), layout = read_pickle(path, weights=weights, limit=BENCHMARK_LIMIT), "nats-file"
    else:
        raise InputError(f"{path}: unknown format; expected a folder, *.pickle.pbz2 (NATS-Bench) or *.pth (NAS-Bench-201)")
    keys = ("meta_archs", "arch2infos", "evaluated_indexes")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise InputError(f"{path}: expected a dict with {list(keys)}; not a NATS-Bench or NAS-Bench-201 file")
    source = Source(path, layout, [str(a) for a in data["meta_archs"]], _single=data, weights=weights)
    source.files.append(record)
    return source
