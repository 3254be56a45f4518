"""Read NATS-Bench's pickles without running anything they say.

A pickle is a program: ``pickle.load`` calls whatever global its opcodes name,
so a file from a colleague's disk or a mirror could run any code on the
reader's machine. NATS-Bench's files hold only plain data (dicts, lists,
tuples, numbers, strings, ``collections.OrderedDict``), so the unpickler here
resolves exactly those globals and refuses every other before it is called:
the error names the file and the class, and nothing from the file has run.

The "full" files also carry trained weights (torch tensors). Their rebuild
functions are never resolved: each tensor decodes to a ``SkippedWeights``
marker, the weights' bytes are never touched, and the import says how many it
skipped. ``.pth`` files (NAS-Bench-201) go through ``torch.load(weights_only=True)``,
torch's own allow-listing unpickler.
"""

from __future__ import annotations

import bz2
import collections
import io
import pickle
from pathlib import Path

from nasforge.errors import InputError

# The globals NATS-Bench's published pickles use, resolved to the same objects.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "int"): int,
    ("builtins", "float"): float, ("builtins", "str"): str, ("builtins", "bool"): bool,
    ("__builtin__", "set"): set,  # the name Python 2 pickles give it
}
# Tensor and storage rebuilders of pickled torch weights: answered with a marker, never called.
_WEIGHT_MODULES = ("torch", "torch._utils", "torch.storage", "torch._tensor", "torch.nn.parameter")


class RefusedPickle(InputError):
    """A source file names a global that NATS-Bench's data never uses; nothing of it was run."""


class SkippedWeights:
    """Where a pickled tensor stood: nasforge imports metrics and leaves trained weights behind."""

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


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, source: Path) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _WEIGHT_MODULES or module.startswith("torch."):
            if name.startswith("_rebuild_tensor"):
                return _tensor
            if name.endswith("Storage") or name in ("_load_from_bytes", "Parameter", "_rebuild_parameter"):
                return _part
        raise RefusedPickle(
            f"{self._source}: refused to unpickle {module}.{name}: NATS-Bench's files hold only plain data, so this "
            "file is not one of them (or was altered); nothing from it was run. Import the file as published by "
            "NATS-Bench's authors")

    def persistent_load(self, pid):  # torch's storages are persistent ids: skipped with their tensor
        return None


def load_pickle(path: Path, compressed: bool | None = None) -> object:
    """The data of one NATS-Bench pickle (bz2-compressed ``.pbz2`` or plain), via the allow-list only."""
    path = Path(path)
    compressed = path.name.endswith(".pbz2") if compressed is None else compressed
    try:
        with (bz2.open(path, "rb") if compressed else open(path, "rb")) as f:
            return _DataUnpickler(io.BufferedReader(f), path).load()
    except RefusedPickle:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as err:
        raise InputError(f"{path}: not a readable NATS-Bench pickle ({type(err).__name__}: {err}); "
                         "download the file again from NATS-Bench's release") from None


def load_pth(path: Path) -> object:
    """A NAS-Bench-201 ``.pth`` through torch's weights-only unpickler (torch refuses any other global)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "refused"
        raise RefusedPickle(f"{path}: torch's weights-only loader refused it ({first}); nothing from it was run. "
                            "Import NAS-Bench-201's file as published") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise InputError(f"{path}: not a readable NAS-Bench-201 .pth ({err}); download it again") from None
