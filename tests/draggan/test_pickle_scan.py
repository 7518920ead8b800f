"""The opcode scan of network pickles and the checked reconstructors (`draggan.checkpoint.pickle_scan`,
`pickle_arrays`): official layouts pass with room to spare, and every hostile pickle of issue 26 (huge memo
indexes, deep nesting, crafted numpy dtypes and arrays, stride-0 views, deflated storage records) is a
one-line CheckpointError that costs less than 150 MB, measured in a child under an address-space cap."""

from __future__ import annotations

import io
import pickle
import struct
import time

import numpy as np
import pytest

from draggan import CheckpointError
from draggan.checkpoint import load_generator_file
from draggan.checkpoint.pickle_scan import scan_pickle
from draggan.limits import MAX_PICKLE_DEPTH, MAX_PICKLE_OBJECTS
from tests.conftest import tiny_generator
from tests.helpers import hostile_files as hf
from tests.helpers.memory import run_capped
from tests.helpers.official_layout import write_official_pickle, write_tf_pickle

GROWTH_MB = 150
TF_STATIC = dict(latent_size=16, dlatent_size=16, resolution=16, fmap_base=128, fmap_max=16, mapping_layers=2)


def test_official_layouts_pass_the_scan_well_within_its_bounds(tmp_path):
    from draggan.networks import Generator

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                  mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=16384, channel_max=512))
    write_official_pickle(G, tmp_path / "snapshot.pkl")
    write_tf_pickle(tiny_generator(16), tmp_path / "tf.pkl", static_kwargs=TF_STATIC)
    for name in ("snapshot.pkl", "tf.pkl"):
        data = (tmp_path / name).read_bytes()
        counts = scan_pickle(data)
        assert counts["end"] == len(data)
        assert counts["objects"] < MAX_PICKLE_OBJECTS / 20 and counts["depth"] < MAX_PICKLE_DEPTH / 2, (name, counts)
    start = time.monotonic()
    scan_pickle((tmp_path / "snapshot.pkl").read_bytes())  # 100 MB of weights: stepped over, not read
    assert time.monotonic() - start < 2


def _ops(*parts: bytes) -> bytes:
    return b"\x80\x04" + b"".join(parts) + b"."


@pytest.mark.parametrize("data, message", [
    (hf.pickle_huge_memo(), "memo index 67108864"),
    (hf.pickle_deep_tuple_key(), f"more than {MAX_PICKLE_DEPTH} levels deep"),
    (_ops(b"]\x94h\x00a"), "puts a value into itself"),  # L.append(L)
    (_ops(b"]\x94]\x94h\x00h\x01a0h\x01]a0h\x00"), "fills a value after placing it"),  # a list grown inside another
    (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"\0" * 100, "BINBYTES8 claims 1099511627776 bytes"),
    (b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"N.", "a frame of 1099511627776 bytes"),
    (_ops(b"(" + b"N" * (MAX_PICKLE_OBJECTS + 1) + b"l"), f"more than {MAX_PICKLE_OBJECTS:,} values"),
    (b"\x80\x04N\xff.", "unknown opcode"),
    (b"\x80\x04NN", "truncated or corrupt"),
    (_ops(b"h\x05"), "memo index 5 read before it was written"),
    (_ops(b"a"), "more values than the stack holds"),
])
def test_hostile_opcode_streams_are_refused_by_the_scan(data, message):
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=message) as e:
        scan_pickle(data)
    assert "\n" not in str(e.value) and time.monotonic() - start < 5


def test_a_self_referencing_structure_is_refused_anywhere_in_the_pickle(tmp_path):
    loop: list = []
    loop.append(loop)
    with pytest.raises(CheckpointError, match="recursive"):
        scan_pickle(pickle.dumps({"G_ema": 1, "x": loop}, protocol=4))


@pytest.mark.parametrize("build, message", [
    (lambda: hf.pickle_object_scalar(), "dtype 'O8'"),
    (lambda: hf.pickle_of_storage(hf.torch_zip_bomb_storage(64 << 20)), "holds compressed records"),
    (lambda: pickle.dumps({"G_ema": hf._Reduce(np.ndarray, (4,), np.dtype("f4"))}, protocol=4),
     "calls numpy.ndarray directly"),
    (lambda: pickle.dumps({"G_ema": hf._Reduce(hf._numpy_core()._reconstruct, np.ndarray, (2**20,), b"b")},
                          protocol=4), "builds an array of shape"),
    (lambda: pickle.dumps({"G_ema": hf._Reduce(hf._numpy_core().scalar, np.dtype("f8"), b"\0" * 4)}, protocol=4),
     "made of bytes 4, not 8 bytes"),
    (lambda: pickle.dumps({"G_ema": hf._Reduce(hf._numpy_core()._reconstruct, np.ndarray, (0,), b"b",
                                               state=(1, (2**30,), np.dtype("f4"), False, b"\0" * 8))}, protocol=4),
     "whose data is 8 bytes, not 4294967296"),
    (lambda: pickle.dumps({"G_ema": np.zeros(3, dtype="<U4")}, protocol=4), "dtype 'U4'"),
])
def test_numpy_and_torch_values_are_checked_before_they_are_built(tmp_path, build, message):
    path = tmp_path / "p.pkl"
    path.write_bytes(build())
    with pytest.raises(CheckpointError, match=message) as e:
        load_generator_file(path)
    assert "\n" not in str(e.value)


def test_numpy_arrays_and_scalars_of_plain_numbers_still_load():
    from draggan.checkpoint.pickle_reader import RestrictedUnpickler

    values = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.float64(0.125), "c": np.array([True, False]),
              "d": np.arange(6, dtype=">i4").reshape(2, 3).T, "e": np.zeros((0, 5), np.uint8)}
    got = RestrictedUnpickler(io.BytesIO(pickle.dumps(values, protocol=4))).load()
    for key, value in values.items():
        np.testing.assert_array_equal(np.asarray(got[key]), value)
        assert np.asarray(got[key]).dtype == value.dtype.newbyteorder("=")  # numpy unpickles in native order


def test_tf_variables_are_arrays_of_floats_of_the_planned_shapes(tmp_path):
    G = tiny_generator(16)
    for override, message in [({"dlatent_avg": [0.0] * 16}, "is a list of None"),
                              ({"dlatent_avg": np.zeros(16, np.int64)}, "not an array of floats"),
                              ({"dlatent_avg": np.zeros(17, np.float32)}, r"has shape \(17,\), expected \(16,\)")]:
        write_tf_pickle(G, tmp_path / "tf.pkl", static_kwargs=TF_STATIC, top_override=override)
        with pytest.raises(CheckpointError, match=message):
            load_generator_file(tmp_path / "tf.pkl")


def test_hostile_pickles_cost_little_memory(tmp_path):
    """Each of the issue's pickles at full size, in a child capped at 1.5 GB above its imports."""
    G = tiny_generator(16)
    files = {}
    for label, data in {"memo index 2^26": hf.pickle_huge_memo(), "10^6-deep tuple key": hf.pickle_deep_tuple_key(),
                        "object scalar from bytes": hf.pickle_object_scalar(),
                        "1 GB deflated storage record": hf.pickle_of_storage(hf.torch_zip_bomb_storage()),
                        "legacy storage of 2^28 floats": hf.pickle_of_storage(hf.legacy_storage_claiming())}.items():
        files[label] = tmp_path / f"{len(files)}.pkl"
        files[label].write_bytes(data)
    for label, value in {"TF object array of 2^27": hf.object_ndarray(), "TF stride-0 view of 2^28": hf.strided_ndarray(),
                         "TF object array of raw bytes": hf.object_array_of_bytes()}.items():
        files[label] = tmp_path / f"{len(files)}.pkl"
        write_tf_pickle(G, files[label], static_kwargs=TF_STATIC, top_override={"dlatent_avg": value})
    results = run_capped(f"""
        for label, path in {({k: str(v) for k, v in files.items()})!r}.items():
            attempt(label, lambda: load_generator_file(path))
    """, imports="from draggan.checkpoint import load_generator_file", headroom_mb=1500)
    for label in files:
        r = results[label]
        assert r["error"] == "CheckpointError" and "MemoryError" not in r["message"], (label, r)
        assert r["growth_mb"] < GROWTH_MB, (label, r)


def test_the_holes_fuzzing_found_are_closed(tmp_path):
    """A frame that begins inside the previous one made the C unpickler read the file at other offsets than the
    scan and ask it for gigabytes; the opcode BUILD on a tensor calls `Tensor.__setstate__`, which makes a view
    of any size of its storage (or resizes it). Both are refused in one line."""
    import torch

    data = bytearray(pickle.dumps({"G_ema": list(range(20000)), "x": list(range(20000))}, protocol=4))
    frames = [i for i in range(len(data) - 9) if data[i] == 0x95 and int.from_bytes(data[i + 1:i + 9], "little") < len(data)]
    first = frames[0]
    data[first + 1:first + 9] = (int.from_bytes(data[first + 1:first + 9], "little") + 2).to_bytes(8, "little")
    with pytest.raises(CheckpointError, match="a frame begins 2 bytes before the previous one ends"):
        scan_pickle(bytes(data))
    storage = hf._Reduce(torch.storage._load_from_bytes, _storage_bytes(torch.zeros(1)))
    tensor = hf._Reduce(torch._utils._rebuild_tensor_v2, storage, 0, (1,), (1,), False, {},
                        state=(storage, 0, (2**28,), (0,)))  # set_(storage, 0, [2^28], [0]): a stride-0 view
    (tmp_path / "t.pkl").write_bytes(pickle.dumps({"G_ema": tensor}, protocol=4))
    with pytest.raises(CheckpointError, match="sets the state of a tensor or storage"):
        load_generator_file(tmp_path / "t.pkl")


def _storage_bytes(t) -> bytes:
    import warnings

    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(t.storage(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


@pytest.mark.parametrize("build", ["set", "frozenset", "OrderedDict", "Size", "EasyDict", "record state", "init args"])
def test_containers_are_built_from_lists_of_items_not_from_arrays(tmp_path, build):
    """`set(array)` of a 4 MB float array boxes a million numpy scalars (70 MB, 20 times the file): containers
    are made from lists and tuples of the pickle's own items only."""
    import collections

    import torch

    from tests.helpers.official_layout import EasyDict, _Persistent, _stand_in_modules

    arr = np.arange(2_000, dtype=np.float32)
    with _stand_in_modules():
        value = {"set": lambda: hf._Reduce(set, arr), "frozenset": lambda: hf._Reduce(frozenset, arr),
                 "OrderedDict": lambda: hf._Reduce(collections.OrderedDict, arr.reshape(-1, 2)),
                 "Size": lambda: hf._Reduce(torch.Size, arr), "EasyDict": lambda: hf._Reduce(EasyDict, arr.reshape(-1, 2)),
                 "record state": lambda: _Persistent(dict(type="class", class_name="Generator", state=arr.reshape(-1, 2))),
                 "init args": lambda: _Persistent(dict(type="class", class_name="Generator", state={
                     "_init_args": arr, "_modules": {"synthesis": _Persistent(dict(
                         type="class", class_name="SynthesisNetwork", state={"_modules": {"b4": None}}))}}))}[build]()
        data = pickle.dumps({"G_ema": value}, protocol=4)
    (tmp_path / "p.pkl").write_bytes(data)
    with pytest.raises(CheckpointError, match="not from a list of its items|not a (Mapping|list or tuple)") as e:
        load_generator_file(tmp_path / "p.pkl")
    assert "\n" not in str(e.value)
