"""Hostile and broken checkpoints: sizes validated before anything is allocated (memory cases run
under an address-space cap), malformed values as CheckpointErrors, safetensors sniffed by structure."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

from draggan import CheckpointError, save_generator
from draggan.checkpoint import load_generator_file, sniff_format
from tests.conftest import tiny_generator
from tests.helpers.memory import run_capped
from tests.helpers.official_layout import write_official_pickle

GROWTH_MB = 150  # what loading a hostile file of a few KB may cost at most
WARM = """
from draggan.checkpoint import load_generator_file, save_generator
from tests.conftest import tiny_generator
import tempfile, os
with tempfile.TemporaryDirectory() as d:  # PyTorch loads its meta-device code once (150 MB)
    load_generator_file(save_generator(tiny_generator(16), os.path.join(d, "warm.safetensors")))
"""


def _safetensors_with_kwargs(G, path, init_kwargs: str) -> None:
    """The weights of `G` under a header whose init_kwargs text is `init_kwargs` (a lie or garbage)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(path),
              metadata={"format": "draggan-generator", "version": "1", "init_kwargs": init_kwargs})


def _raw_safetensors(path, header: bytes, data: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def _hostile_files(tmp_path) -> dict[str, str]:
    G = tiny_generator(16)
    kw = json.loads(json.dumps(G.init_kwargs))
    syn, files = kw["synthesis_kwargs"], {}

    def lie(name, **changes):
        files[name] = str(tmp_path / f"{name}.safetensors")
        _safetensors_with_kwargs(G, files[name], json.dumps({**kw, **changes}))

    lie("resolution 2^20, channel_base 2^30", img_resolution=2**20, synthesis_kwargs={**syn, "channel_base": 2**30})
    lie("channel_max 1e9", synthesis_kwargs={**syn, "channel_max": 1e9, "channel_base": 2**22})
    lie("mapping num_layers 1e6", mapping_kwargs={"num_layers": 10**6})
    lie("w_dim 40000", w_dim=40000)
    lie("z_dim -5", z_dim=-5)
    lie("z_dim 1.5", z_dim=1.5)
    lie("wide at 2048 px", img_resolution=2048, synthesis_kwargs={**syn, "channel_base": 2**22, "channel_max": 4096})
    files["init_kwargs not JSON"] = str(tmp_path / "badjson.safetensors")
    _safetensors_with_kwargs(G, files["init_kwargs not JSON"], "{not json")
    files["init_kwargs nested 100000 deep"] = str(tmp_path / "deep.safetensors")
    _safetensors_with_kwargs(G, files["init_kwargs nested 100000 deep"], "[" * 100_000 + "]" * 100_000)
    files["header claims 8 GB tensor"] = str(tmp_path / "huge.safetensors")
    _raw_safetensors(tmp_path / "huge.safetensors", json.dumps(
        {"__metadata__": {"format": "draggan-generator", "init_kwargs": json.dumps(kw)},
         "mapping.w_avg": {"dtype": "F32", "shape": [2**31], "data_offsets": [0, 2**33]}}).encode())

    # pickles: views of a 1-element storage, a self-referencing settings list, a counted string of 1 TB
    big = tiny_generator(16)
    big.register_buffer("big", torch.zeros(1, dtype=torch.float64).expand(20000, 20000))
    files["pickle: stride-0 float64 20000^2"] = str(tmp_path / "stride0.pkl")
    write_official_pickle(big, files["pickle: stride-0 float64 20000^2"], only_g_ema=True)
    big = tiny_generator(16)
    big.synthesis.b4.const = torch.nn.Parameter(torch.zeros(1, 1, 1).expand(16, 40000, 40000))
    files["pickle: stride-0 const 40000^2"] = str(tmp_path / "stride0const.pkl")
    write_official_pickle(big, files["pickle: stride-0 const 40000^2"], only_g_ema=True)
    loop: list = []
    loop.append(loop)
    files["pickle: self-referencing settings"] = str(tmp_path / "loop.pkl")
    write_official_pickle(G, files["pickle: self-referencing settings"], only_g_ema=True,
                          init_kwargs={**kw, "mapping_kwargs": {"num_layers": loop}})
    files["pickle: 1 TB counted bytes"] = str(tmp_path / "bytes8.pkl")
    (tmp_path / "bytes8.pkl").write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"\0" * 100)
    return files


def test_hostile_checkpoints_are_refused_before_allocating(tmp_path):
    files = _hostile_files(tmp_path)
    results = run_capped(f"""
        for label, path in {files!r}.items():
            attempt(label, lambda: load_generator_file(path))
    """, imports=WARM, headroom_mb=1500)
    for label in files:
        r = results[label]
        assert r["error"] == "CheckpointError", (label, r)
        assert r["growth_mb"] < GROWTH_MB, (label, r)
    assert "img_resolution=1048576" in results["resolution 2^20, channel_base 2^30"]["message"]
    assert "num_layers=1000000" in results["mapping num_layers 1e6"]["message"]
    assert "w_dim=40000" in results["w_dim 40000"]["message"]
    assert "z_dim=-5" in results["z_dim -5"]["message"]
    assert "parameters" in results["wide at 2048 px"]["message"]
    assert "not valid JSON" in results["init_kwargs not JSON"]["message"]
    assert "20000" in results["pickle: stride-0 float64 20000^2"]["message"]
    assert "recursive" in results["pickle: self-referencing settings"]["message"]


@pytest.mark.parametrize("change, message", [
    ({"synthesis_kwargs": {"architecture": "evil"}}, "architecture='evil'"),
    ({"synthesis_kwargs": {"resample_filter": "x"}}, "resample_filter='x'"),
    ({"synthesis_kwargs": {"conv_clamp": float("nan")}}, "conv_clamp=nan"),
    ({"mapping_kwargs": {"num_layers": True}}, "num_layers=True"),
    ({"img_resolution": 48}, "not a power of two"),
    ({"img_resolution": 2048, "synthesis_kwargs": {"channel_base": 1024}}, "without channels"),
    ({"img_resolution": 2048, "synthesis_kwargs": {"channel_base": 2**22, "channel_max": 64}}, "features"),
    ({"synthesis_kwargs": {"unknown_knob": 3}}, "does not know"),
    ({"w_dim": None}, "w_dim=None"),
])
def test_generator_settings_are_bounded_before_the_network_is_built(change, message):
    from draggan.checkpoint import planned_shapes

    kw = json.loads(json.dumps(tiny_generator(16).init_kwargs))
    for key, value in change.items():
        kw[key] = {**kw[key], **value} if isinstance(value, dict) else value
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace("[", r"\[")):
        planned_shapes(kw, "test")


def test_official_settings_pass_the_bounds():
    from draggan.checkpoint import check_generator_kwargs, planned_shapes

    official_1024 = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                         mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=32768, channel_max=512,
                                                                                   num_fp16_res=4, conv_clamp=256))
    shapes = planned_shapes(official_1024, "official")
    assert 33_000_000 < sum(torch.Size(s).numel() for s in shapes.values()) < 34_000_000  # 30.0 M weights, 3 M buffers
    check_generator_kwargs({**official_1024, "square": False})


def test_header_that_disagrees_with_its_settings_is_refused_before_the_weights_are_read(tmp_path):
    G = tiny_generator(16)
    kw = json.loads(json.dumps(G.init_kwargs))
    _safetensors_with_kwargs(G, tmp_path / "g.safetensors", json.dumps({**kw, "img_resolution": 32}))
    with pytest.raises(CheckpointError, match="do not fit the generator they describe: missing"):
        load_generator_file(tmp_path / "g.safetensors")
    _safetensors_with_kwargs(G, tmp_path / "h.safetensors", json.dumps({**kw, "w_dim": 8}))
    with pytest.raises(CheckpointError, match=r"synthesis.b4.conv1.affine.weight \[16, 16\] \(expected \[16, 8\]\)"):
        load_generator_file(tmp_path / "h.safetensors")


@pytest.mark.parametrize("init_kwargs, message", [("[1, 2]", "not a JSON object"), ("{", "not valid JSON"),
                                                  ('{"z_dim": 16}', "lack c_dim")])
def test_malformed_init_kwargs_are_checkpoint_errors(tmp_path, init_kwargs, message):
    _safetensors_with_kwargs(tiny_generator(16), tmp_path / "g.safetensors", init_kwargs)
    with pytest.raises(CheckpointError, match=message):
        load_generator_file(tmp_path / "g.safetensors")


def test_every_header_length_mod_256_is_sniffed_as_safetensors(tmp_path):
    """The header length is little-endian: its first byte is the length mod 256, 0x80 (a pickle's first
    byte) included. Every residue is a safetensors file, and each reads back."""
    base = {"__metadata__": {"format": "x", "pad": ""}, "t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    for residue in range(256):
        header = json.dumps(base).encode()
        header = json.dumps({**base, "__metadata__": {"format": "x", "pad": " " * ((residue - len(header)) % 256)}}).encode()
        assert len(header) % 256 == residue
        path = tmp_path / f"h{residue}.safetensors"
        _raw_safetensors(path, header, struct.pack("<2f", 1.0, 2.0))
        assert path.read_bytes()[0] == residue
        assert sniff_format(path) == "safetensors", residue
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / "h128.safetensors"))["t"].tolist() == [1.0, 2.0]
    # a generator whose real header starts with 0x80 loads (safetensors pads headers to 8 bytes: 1 length in 32)
    G = tiny_generator(16)
    for pad in range(0, 256, 1):
        path = save_generator(G, tmp_path / "g.safetensors", extra_metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length of 0x80 mod 256")
    H = load_generator_file(path)
    ws = G.mapping(torch.randn(1, 16), None)
    assert torch.equal(G.synthesis(ws), H.synthesis(ws))


def test_pickles_are_still_pickles(tmp_path):
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"G_ema": [1] * 1000}, protocol=protocol))
        assert sniff_format(path) == "pickle"
