"""Read NATS-Bench's pickles without running anything they say.

A pickle is a program: ``pickle.load`` calls whatever global its opcodes name,
so a file from a colleague's disk or a mirror could run any code on the
reader's machine. The unpickler here resolves exactly the globals that
NATS-Bench's and NAS-Bench-201's own collection code wrote, and refuses every
other before it is called: the error names the file and the class, and nothing
from the file has run. What that code wrote (read from xautodl 1.0.0,
``exps/NATS-Bench/{tss,sss}-collect.py`` and NB-201's statistics scripts):

- plain data: dicts, ``collections.OrderedDict``, lists, tuples, sets, strings,
  Python numbers, None;
- numpy scalars: ``get_model_infos`` counts parameters as ``sum(np.prod(...)) / 1e6``,
  a ``numpy.float64`` that ``ResultsCount`` stores unconverted. A scalar pickles as
  ``numpy.core.multiarray.scalar(dtype, raw bytes)`` (``numpy._core`` under numpy 2)
  with its ``numpy.dtype``. Both are answered by stand-ins that admit only bool,
  integer and floating dtypes of fixed size and build the number from its raw bytes
  (``np.frombuffer``), returning a plain Python number of the same value: no numpy
  code a file chooses runs, and an object dtype (which could carry anything) is
  refused;
- ``_codecs.encode(text, "latin1")``: how a protocol-2 pickle (``torch.save``'s
  default, so NB-201's ``.pth``) spells bytes;
- torch tensors: the "full" files' trained weights, skipped unread unless asked for, then rebuilt
  by torch's own functions from storages that torch's weights-only loader reads.

``.pth`` files (NAS-Bench-201) go through ``torch.load(weights_only=True)``,
torch's own allow-listing unpickler, with the same numpy stand-ins allowed
under the same names.
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import hashlib
import io
import os
import pickle
import re
import stat
from pathlib import Path

import numpy as np

from nasforge.errors import InputError

# The plain-data globals NATS-Bench's published pickles use, resolved to the same objects.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "int"): int,
    ("builtins", "float"): float, ("builtins", "str"): str, ("builtins", "bool"): bool,
    ("__builtin__", "set"): set,  # the name Python 2 pickles give it
}
# Tensor and storage rebuilders of pickled torch weights.
_WEIGHT_MODULES = ("torch", "torch._utils", "torch.storage", "torch._tensor", "torch.nn.parameter")
# numpy's reduce names for a fixed-size bool, integer or floating dtype ('f8', 'i8', 'u1', 'b1', ...).
_NUMPY_CODE = re.compile(r"b1|[iuf](?:1|2|4|8)")


class RefusedPickle(InputError):
    """A source file names a global that NATS-Bench's data never uses; nothing of it was run."""


class _Refused(Exception):
    """Raised inside a stand-in; the loader re-raises it as ``RefusedPickle`` naming the file."""


class NumpyDtype:
    """Stands for ``numpy.dtype`` while unpickling: records a bool/int/float code and byte order, nothing else.

    numpy pickles a dtype as ``numpy.dtype(code, align, copy)`` then ``__setstate__((version, byteorder,
    subarray, names, fields, elsize, alignment, flags[, metadata]))``; a structured or object dtype
    (fields, subarrays, code 'O8') is refused before numpy sees it.
    """

    def __init__(self, code=None, align=False, copy=True) -> None:
        if not (isinstance(code, str) and _NUMPY_CODE.fullmatch(code)) or align not in (0, 1) or copy not in (0, 1):
            raise _Refused(f"numpy.dtype{(code, align, copy)!r}: only bool, integer and floating dtypes are data")
        self.code, self.byteorder = code, "="

    def __setstate__(self, state) -> None:
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and state[1] in ("<", ">", "|", "=") and state[2] is None and state[3] is None and state[4] is None
                and all(isinstance(v, int) for v in state[5:8]) and (len(state) == 8 or state[8] in (None, {}))):
            raise _Refused(f"numpy.dtype state {state!r}: only a plain bool, integer or floating dtype is data")
        self.byteorder = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.code)
        return dtype if self.byteorder in ("|", "=") else dtype.newbyteorder(self.byteorder)


def numpy_scalar(dtype, data=None):
    """Stands for ``numpy.core.multiarray.scalar``: the number in ``data``'s bytes, as a plain Python number."""
    if not isinstance(dtype, NumpyDtype):
        raise _Refused(f"numpy.core.multiarray.scalar of {type(dtype).__name__}: only a bool, integer or floating "
                       "dtype is data")
    dtype = dtype.numpy()
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"a numpy {dtype} scalar of {len(data) if isinstance(data, bytes) else type(data).__name__} "
                       f"bytes; it needs exactly {dtype.itemsize}")
    return np.frombuffer(data, dtype)[0].item()


def _latin1(text, encoding="utf-8") -> bytes:
    """Stands for ``_codecs.encode``: protocol-2 pickles write bytes as ``encode(latin-1 text, 'latin1')``."""
    if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
        raise _Refused(f"_codecs.encode(..., {encoding!r}): only latin-1 text is how a pickle spells bytes")
    return text.encode("latin1")


#: The numpy and bytes globals either loader admits, under numpy 1.x and 2.x names.
NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "scalar"): numpy_scalar,
    ("numpy._core.multiarray", "scalar"): numpy_scalar,
    ("numpy", "dtype"): NumpyDtype,
}


class SkippedWeights:
    """Where a pickled tensor stood when weights are not imported: counted, its bytes never touched."""

    count = 0  # how many were skipped in this process (reported by the import)

    def __init__(self) -> None:
        SkippedWeights.count += 1

    def __setstate__(self, state) -> None:  # a tensor's extra state: dropped unread
        pass


def _tensor(*args, **kwargs) -> SkippedWeights:
    """Stands where torch would rebuild a tensor: one skipped tensor, counted."""
    return SkippedWeights()


def _part(*args, **kwargs) -> None:
    """Stands where torch would rebuild a storage or wrap a Parameter: part of a tensor already counted."""
    return None


def _storage_from_bytes(data) -> object:
    """Stands for ``torch.storage._load_from_bytes`` (which calls ``torch.load`` with every global allowed):
    the same bytes through torch's weights-only loader."""
    import torch

    if not isinstance(data, bytes):
        raise _Refused(f"a tensor storage of {type(data).__name__}; expected torch.save's bytes")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _weight_globals() -> dict[tuple[str, str], object]:
    """The tensor rebuilders a pickled state dict names, resolved to torch's own (they only construct tensors
    from storages, which come through torch's weights-only loader)."""
    import torch

    return {("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): _storage_from_bytes}


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, source: Path, weights: bool) -> None:
        super().__init__(file)
        self._source = source
        self._weights = _weight_globals() if weights else None

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in NUMPY_GLOBALS:
            return NUMPY_GLOBALS[(module, name)]
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        if module in _WEIGHT_MODULES or module.startswith("torch."):
            if self._weights is not None and (module, name) in self._weights:
                return self._weights[(module, name)]
            if self._weights is None and name.startswith("_rebuild_tensor"):
                return _tensor
            if self._weights is None and (name.endswith("Storage") or name in (
                    "_load_from_bytes", "Parameter", "_rebuild_parameter")):
                return _part
        raise RefusedPickle(
            f"{self._source}: refused to unpickle {module}.{name}: NATS-Bench's files hold only plain data, numpy "
            "numbers and tensors, so this file is not one of them (or was altered); nothing from it was run. "
            "Import the file as published by NATS-Bench's authors")

    def persistent_load(self, pid):  # torch's storages are persistent ids: skipped with their tensor
        if self._weights is not None:
            raise RefusedPickle(f"{self._source}: holds a persistent id {pid!r}, which NATS-Bench's pickles never "
                                "write; nothing from it was run")
        return None


class HashedFile(io.RawIOBase):
    """A source file read once, front to back, hashing every byte as it passes: the bytes parsed are
    the bytes recorded (a file swapped between a hash pass and a parse pass cannot split them).

    Opened through no link and only if it is a regular file, so a FIFO or ``/dev/zero`` in a
    source folder is refused at once instead of hanging the import."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except OSError as err:
            raise InputError(f"{self.path}: cannot be opened as a plain file ({err.strerror}); a benchmark's "
                             "files are read directly, never through links") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(f"{self.path}: not a regular file (a FIFO, device or folder); give the benchmark's "
                             "files themselves")
        self._file = os.fdopen(fd, "rb", buffering=0)
        self._digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer)[:n])
            self.size += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()

    def record(self) -> dict:
        """Name, size and sha256 of the whole file: whatever the parser left unread is read here."""
        while chunk := self._file.read(1 << 20):
            self._digest.update(chunk)
            self.size += len(chunk)
        return {"name": self.path.name, "bytes": self.size, "sha256": self._digest.hexdigest()}


# What a real file of each kind can hold, decompressed (NATS-Bench's largest, the full TSS arch files with
# every run's weights, hold ~150 MB): past these a file is not NATS-Bench's, and reading stops before a
# bz2 bomb or a declared 2**62-byte string can take the memory.
META_LIMIT = 64 << 20  # meta.pickle.pbz2: 15,625 or 32,768 arch strings (~1.5 MB)
ARCH_FILE_LIMIT = 1 << 30  # one {index:06d}.pickle.pbz2
BENCHMARK_LIMIT = 64 << 30  # a single-file benchmark, or NAS-Bench-201's .pth (2.2 GB as published)


class _Capped:
    """A decompressed stream that refuses to yield more than ``limit`` bytes, and never asks the
    stream below for more than it may still yield, whatever length a pickle opcode declares."""

    def __init__(self, stream, limit: int, path: Path) -> None:
        self._stream, self._limit, self._path, self.count = stream, limit, path, 0

    def _take(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self._limit:
            raise InputError(f"{self._path}: holds more than {self._limit} bytes once decompressed, more than any "
                             "NATS-Bench or NAS-Bench-201 file of its kind; not one of their files (or a bz2 bomb)")
        return data

    def read(self, n: int = -1) -> bytes:
        room = self._limit - self.count + 1
        return self._take(self._stream.read(room if n is None or n < 0 or n > room else n))

    def readline(self, n: int = -1) -> bytes:
        room = self._limit - self.count + 1
        return self._take(self._stream.readline(room if n is None or n < 0 or n > room else n))

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)


def read_pickle(path: Path, weights: bool = False, limit: int | None = None) -> tuple[object, dict]:
    """``load_pickle``'s data and the file's provenance record, from one read of the file; ``limit``:
    the most bytes it may hold decompressed (default: an arch file's)."""
    with HashedFile(path) as raw:
        return load_pickle(path, weights=weights, stream=raw, limit=limit or ARCH_FILE_LIMIT), raw.record()


def read_pth(path: Path, limit: int | None = None) -> tuple[object, dict]:
    """``load_pth``'s data and the file's provenance record, from one read of the file."""
    limit = limit or BENCHMARK_LIMIT
    with HashedFile(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        if size > limit:
            raise InputError(f"{path}: {size} bytes, more than any NAS-Bench-201 file ({limit}); not one of its files")
        return load_pth(path, io.BytesIO(raw.readall())), raw.record()


def load_pickle(path: Path, compressed: bool | None = None, weights: bool = False,
                stream: io.RawIOBase | None = None, limit: int = BENCHMARK_LIMIT) -> object:
    """The data of one NATS-Bench pickle (bz2-compressed ``.pbz2`` or plain), via the allow-list only.

    ``weights``: rebuild the trained weights of "full" files as tensors (through torch's weights-only
    loader) instead of skipping them unread. ``stream``: the file's bytes, already open (else ``path``
    is opened). ``limit``: the most bytes the pickle may hold (decompressed)."""
    path = Path(path)
    compressed = path.name.endswith(".pbz2") if compressed is None else compressed
    try:
        with contextlib.ExitStack() as stack:
            raw = stream if stream is not None else stack.enter_context(HashedFile(path))
            buffered = io.BufferedReader(raw, 1 << 20)
            stack.callback(buffered.detach)  # leaves ``raw`` open for its record
            f = stack.enter_context(bz2.open(buffered, "rb")) if compressed else buffered
            return _DataUnpickler(_Capped(f, limit, path), path, weights).load()
    except (RefusedPickle, InputError):
        raise
    except (MemoryError, OverflowError, RecursionError) as err:
        raise InputError(f"{path}: declares more than it can hold ({type(err).__name__}); not a NATS-Bench "
                         "pickle") from None
    except _Refused as err:
        raise RefusedPickle(f"{path}: refused {err}; nothing from it was run. Import the file as published by "
                            "NATS-Bench's authors") from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError) as err:
        raise InputError(f"{path}: not a readable NATS-Bench pickle ({type(err).__name__}: {err}); "
                         "download the file again from NATS-Bench's release") from None


def load_pth(path: Path, stream: io.BytesIO | None = None) -> object:
    """A NAS-Bench-201 ``.pth`` through torch's weights-only unpickler, numpy's scalars admitted as above
    (torch refuses any other global before it runs). ``stream``: the file's bytes, already read."""
    import torch

    allowed = [(stand_in, f"{module}.{name}") for (module, name), stand_in in NUMPY_GLOBALS.items()]
    try:
        with torch.serialization.safe_globals(allowed):
            if stream is not None:
                return torch.load(stream, map_location="cpu", weights_only=True)
            with HashedFile(path) as raw:
                return torch.load(io.BytesIO(raw.readall()), map_location="cpu", weights_only=True)
    except _Refused as err:
        raise RefusedPickle(f"{path}: refused {err}; nothing from it was run. Import NAS-Bench-201's file as "
                            "published") from None
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "refused"
        raise RefusedPickle(f"{path}: torch's weights-only loader refused it ({first}); nothing from it was run. "
                            "Import NAS-Bench-201's file as published") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise InputError(f"{path}: not a readable NAS-Bench-201 .pth ({err}); download it again") from None
