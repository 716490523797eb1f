"""The codec with a trained model: the bound on every value, model handling, bad input.

One small model is trained per session (a few epochs); the codec side never needs torch.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_bound_codec import assert_within

from balerc.codec import Codec
from balerc.codec.ae import MARGIN, compress_with_model
from balerc.codec.api import decompress
from balerc.codec.bounds import Bound
from balerc.codec.model import ModelBundle
from balerc.codec.runtime import Session
from balerc.formats import toy
from balerc.formats.container import ContainerReader
from balerc.formats.errors import InputError
from balerc.formats.table import Table
from balerc.formats.tableio import read_table

pytest.importorskip("torch")


@pytest.fixture(scope="session")
def dimuon() -> Table:
    return toy.dimuon(6000, seed=21)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, dimuon: Table) -> Path:
    from balerc.train import TrainConfig, export, fit

    d = tmp_path_factory.mktemp("model") / "m"
    cfg = TrainConfig(epochs=8, search_steps=40, search_rows=2048, threads=1, seed=1)
    return Path(export(fit(dimuon, cfg), d, force=True))


def roundtrip(table: Table, model_dir: Path, bound: str | None, **kw) -> tuple[Table, object]:
    """Round trip that keeps the model (a small test table could not amortize it)."""
    kw.setdefault("keep_model", True)
    buf = io.BytesIO()
    res = compress_with_model(table, buf, model_dir=model_dir, bound=bound, **kw)
    return decompress(buf.getvalue(), threads=kw.get("threads", 1)), res


@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-3", "rel:1e-4", "abs:0.05", "pwrel:1e-3"])
@pytest.mark.parametrize("threads,chunk_rows", [(1, 65536), (2, 1000), (2, 777)])
def test_bound_holds_with_model(dimuon, model_dir, bound, threads, chunk_rows):
    back, _ = roundtrip(dimuon, model_dir, bound, threads=threads, chunk_rows=chunk_rows)
    assert_within(dimuon, back, Bound.parse(bound))


def test_model_is_used_and_never_worse_than_quantization(dimuon, model_dir):
    with_model, res = roundtrip(dimuon, model_dir, "rel:1e-3")
    modes = {r["mode"] for r in res.extra["errors"]}
    assert "predicted" in modes or "anchor" in modes
    plain = io.BytesIO()
    compress_with_model(dimuon, plain, model_dir=None, bound="rel:1e-3")
    model_bytes = len(ModelBundle.load(model_dir).decoder)  # embedded once (compressed)
    assert res.file_bytes - model_bytes <= len(plain.getvalue())


def test_small_table_drops_a_model_that_does_not_pay(dimuon, model_dir):
    small = dimuon.slice(0, 30)
    _, res = roundtrip(small, model_dir, "rel:1e-3", keep_model=False)
    assert any("stored without the model" in n and "--no-embed-model" in n
               for n in res.extra["notes"])
    res = compress_with_model(small, io.BytesIO(), model_dir=model_dir, bound="rel:1e-3",
                              embed_model=False)  # no advice to pass the flag it was given
    assert [n for n in res.extra["notes"] if "its model header cost" in n
            and "stored without the model" in n and "--no-embed-model" not in n]
    assert {r["mode"] for r in res.extra["errors"]} == {"quantized", "lossless"}  # ints too
    plain = io.BytesIO()
    compress_with_model(small, plain, model_dir=None, bound="rel:1e-3")
    # the same bytes but the header's random file_id, whose compressed size varies by a few bytes
    assert abs(res.file_bytes - len(plain.getvalue())) <= 16
    out = io.BytesIO()
    compress_with_model(small, out, model_dir=model_dir, bound="rel:1e-3")
    with ContainerReader(out.getvalue()) as a, ContainerReader(plain.getvalue()) as b:
        assert a.header["coders"] == b.header["coders"]
        assert [a.read_chunk(i) for i in range(a.n_chunks)] == [b.read_chunk(i) for i in range(b.n_chunks)]


def test_real_zmumu_with_model(model_dir):
    from conftest import shared_file

    t = read_table(shared_file("uproot-Zmumu.root"))
    for b in ("rel:1e-3", "pwrel:5e-4"):
        back, _ = roundtrip(t, model_dir, b, threads=2, chunk_rows=1000)
        assert_within(t, back, Bound.parse(b))


def test_bound_absorbs_rows_that_break_the_physics(dimuon, model_dir):
    t = Table(dict(dimuon.columns), dimuon.source)
    e1 = t["E1"].copy()
    e1[::97] *= 3.0  # rows the decoder cannot predict
    e1[5] = np.nan
    e1[6] = -np.inf
    t.columns["E1"] = e1
    back, _ = roundtrip(t, model_dir, "rel:1e-3", threads=2, chunk_rows=1500)
    assert_within(t, back, Bound.parse("rel:1e-3"))


def test_pure_autoencoder_reports_errors(dimuon, model_dir):
    back, res = roundtrip(dimuon, model_dir, None)
    report = {r["name"]: r for r in res.extra["errors"]}
    for name in dimuon.names_of_kind("float"):
        err = np.abs(back[name] - dimuon[name])
        assert report[name]["max"] == pytest.approx(float(err.max()), rel=1e-9, abs=1e-12)
    assert any(r["mode"] == "autoencoder" for r in report.values())


def test_decoder_drift_between_thread_counts_is_below_margin(dimuon, model_dir):
    m = ModelBundle.load(model_dir)
    off, sc = (np.asarray(v) for v in m.norm())
    x = ((dimuon.to_numpy(m.columns) - off) / sc).astype(np.float32)
    feeds = {}
    if m.latent_dim:
        feeds["z"] = Session(m.encoder, "cpu", 1).run(x=x)
    if m.anchors:
        feeds["a"] = x[:, [m.columns.index(a) for a in m.anchors]]
    one = Session(m.decoder, "cpu", 1).run(**feeds)
    two = Session(m.decoder, "cpu", 2).run(**feeds)
    assert float(np.max(np.abs(one.astype(np.float64) - two))) < MARGIN


def test_no_embed_model_file_whose_model_never_predicted_reads_without_it(tmp_path, dimuon,
                                                                          model_dir):
    """The model is needed only by chunks that predict: a file whose every chunk fell back
    to plain quantization (the model paid nowhere) decodes without -m; one that predicts
    says at that chunk what to pass (it asked for the model at open either way)."""
    rng = np.random.default_rng(3)  # every column shuffled on its own: no relation left
    noise = Table({n: rng.permutation(dimuon[n]) for n in dimuon.names})
    out = tmp_path / "noise.balerc"
    compress_with_model(noise, out, model_dir=model_dir, bound="rel:1e-3", embed_model=False,
                        keep_model=True, chunk_rows=2000)
    with ContainerReader(out) as r:
        assert any(c.get("model") for c in r.header["coders"])  # the header names the model
        modes = "".join(m.get("modes", "") for c in r.chunks for m in c.meta.values())
    assert modes
    assert not set(modes) & set("prs"), modes  # ... but no chunk predicts
    assert_within(noise, decompress(out), Bound.parse("rel:1e-3"))


def test_no_embed_model_needs_the_right_model(tmp_path, dimuon, model_dir):
    out = tmp_path / "x.balerc"
    compress_with_model(dimuon, out, model_dir=model_dir, bound="rel:1e-3", embed_model=False,
                        keep_model=True)
    assert out.stat().st_size < roundtrip(dimuon, model_dir, "rel:1e-3")[1].file_bytes
    with pytest.raises(InputError, match=rf"^{re.escape(str(out))}: .*--no-embed-model: pass "
                       r"-m MODEL_DIR \(model_dir=\)"):
        decompress(out)
    assert_within(dimuon, decompress(out, model_dir=model_dir), Bound.parse("rel:1e-3"))
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    dec = other / "decoder.onnx"
    dec.write_bytes(dec.read_bytes() + b"\0")  # a different decoder, manifest updated to match
    man = json.loads((other / "model.json").read_text())
    import hashlib

    man["decoder"]["sha256"] = hashlib.sha256(dec.read_bytes()).hexdigest()
    (other / "model.json").write_text(json.dumps(man))
    with pytest.raises(InputError, match="not the one the file was compressed with"):
        decompress(out, model_dir=other)


def test_tampered_model_is_refused(tmp_path, dimuon, model_dir):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    enc = bad / ("encoder.onnx" if (bad / "encoder.onnx").exists() else "decoder.onnx")
    data = bytearray(enc.read_bytes())
    data[len(data) // 2] ^= 0xFF
    enc.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 does not match"):
        compress_with_model(dimuon, io.BytesIO(), model_dir=bad, bound="rel:1e-3")


@pytest.mark.parametrize("edit", [{"latent_bits": 17}, {"latent_bits": "6"},
                                  {"anchors": "predicted[:1]"}])
def test_an_edited_model_json_is_refused_before_writing(tmp_path, dimuon, model_dir, edit):
    """A model.json with latent_bits 17, or a column both anchor and predicted, had given a
    compress that exited 0 and a file every reader refused (with `--recover` too)."""
    from balerc.codec.validate import check_own_coders

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    m = json.loads((bad / "model.json").read_text())
    m.update({k: m["predicted"][:1] if v == "predicted[:1]" else v for k, v in edit.items()})
    (bad / "model.json").write_text(json.dumps(m))
    out = tmp_path / "x.balerc"
    with pytest.raises(InputError, match=r"model\.json: .*(latent_bits|both anchors)"):
        compress_with_model(dimuon, out, model_dir=bad, bound="rel:1e-3", keep_model=True)
    assert not out.exists()
    # the writer's own check, for a coder record that gets past the manifest some other way
    with ContainerReader(_model_file(dimuon, model_dir, tmp_path)) as r:
        header = json.loads(json.dumps(r.header))
    ae = next(c for c in header["coders"] if c["id"] == "autoencoder")
    ae["model"]["latent_bits"] = 17
    with pytest.raises(InputError, match=r"^cannot write this file: readers would refuse its "
                       r"autoencoder coder, 'model': 'latent_bits' = 17 is outside \[1, 16\]"):
        check_own_coders(header)


def _model_file(dimuon: Table, model_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "good.balerc"
    compress_with_model(dimuon, out, model_dir=model_dir, bound="rel:1e-3", keep_model=True)
    return out


def test_missing_and_wrong_kind_columns(dimuon, model_dir):
    cols = dict(dimuon.columns)
    del cols["E1"], cols["pt2"]
    with pytest.raises(InputError, match=rf"^the model {re.escape(str(model_dir))} needs "
                       r"column\(s\) \['E1', 'pt2'\] that the data lacks"):
        compress_with_model(Table(cols), io.BytesIO(), model_dir=model_dir, bound="rel:1e-3")
    cols = dict(dimuon.columns)
    cols["M"] = np.arange(dimuon.n_rows)
    with pytest.raises(InputError, match="needs float columns"):
        compress_with_model(Table(cols), io.BytesIO(), model_dir=model_dir, bound="rel:1e-3")
    with pytest.raises(InputError, match="is a file, not a model directory"):
        ModelBundle.load(model_dir / "model.json")
    res = compress_with_model(dimuon, io.BytesIO(), model_dir=None, bound="rel:1e-3",
                              latent_bits=8)  # had been ignored without a word
    assert "--latent-bits has no effect: no model" in res.extra["notes"]


def test_codec_api_arrays_and_tables(dimuon, model_dir):
    codec = Codec(model_dir, threads=2)
    blob = codec.compress(dimuon, bound="rel:1e-3")
    assert isinstance(blob, bytes)
    assert_within(dimuon, codec.decompress(blob), Bound.parse("rel:1e-3"))
    m = ModelBundle.load(model_dir)
    arr = dimuon.to_numpy(m.columns)
    back = codec.decompress(codec.compress(arr, bound="abs:0.01"), as_array=True)
    assert back.shape == arr.shape and np.max(np.abs(back - arr)) <= 0.01


def test_decompress_in_fresh_process_without_torch_or_model(tmp_path, dimuon, model_dir):
    out = tmp_path / "x.balerc"
    compress_with_model(dimuon, out, model_dir=model_dir, bound="rel:1e-3")
    moved = tmp_path / "gone"
    shutil.copytree(model_dir, moved)
    script = f"""
import sys
sys.modules['torch'] = None  # any import of torch now fails
from balerc.codec.api import decompress
t = decompress({str(out)!r})
import numpy as np
np.save({str(tmp_path / 'e1.npy')!r}, t['E1'])
assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    e1 = np.load(tmp_path / "e1.npy")
    assert np.all(np.abs(e1 - dimuon["E1"]) <= Bound.parse("rel:1e-3").absolute(dimuon["E1"]))


def test_codec_imports_do_not_pull_torch():
    code = "import sys, balerc.codec, balerc.formats, balerc.codec.ae, balerc.codec.api; " \
           "sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_compress_with_model_and_summary(tmp_path, dimuon, model_dir):
    from click.testing import CliRunner

    from balerc.cli.main import cli
    from balerc.formats.tableio import write_table

    src = tmp_path / "mu.root"
    write_table(dimuon, src)
    out = tmp_path / "mu.balerc"
    res = CliRunner().invoke(cli, ["compress", str(src), "-m", str(model_dir), "-o", str(out),
                                   "--error-bound", "rel:1e-3", "--threads", "2", "-q"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["compress", str(src), "-m", str(model_dir), "-o", str(out),
                                   "--error-bound", "rel:1e-3", "--force", "--keep-model"])
    assert res.exit_code == 0 and "x vs raw" in res.output and "max/bound" not in res.output
    res = CliRunner().invoke(cli, ["compress", str(src), "-m", str(model_dir), "-o", str(out),
                                   "--error-bound", "rel:1e-3", "--force", "--keep-model", "-v"])
    assert res.exit_code == 0, res.output
    assert "vs raw" in res.output and "max/bound" in res.output and "MB/s" in res.output
    back = tmp_path / "back.root"
    res = CliRunner().invoke(cli, ["decompress", str(out), "-o", str(back), "-q"])
    assert res.exit_code == 0, res.output
    assert_within(read_table(src), read_table(back), Bound.parse("rel:1e-3"))


def test_embedded_decoder_is_lean(tmp_path, dimuon, model_dir):
    """Files embed the decoder without its doc string and manifest metadata: same graph."""
    onnx = pytest.importorskip("onnx")
    import zstandard

    from balerc.codec.ae import LEAN_ATTACHMENT
    from balerc.codec.model import lean_onnx
    from balerc.formats.container import ContainerReader

    out = tmp_path / "x.balerc"
    compress_with_model(dimuon, out, model_dir=model_dir, bound="rel:1e-3", keep_model=True)
    with ContainerReader(out) as r:
        assert "lean-decoder" in r.header["required_features"]
        blob = zstandard.ZstdDecompressor().decompress(r.read_attachment(LEAN_ATTACHMENT))
    full = (model_dir / "decoder.onnx").read_bytes()
    lean, orig = onnx.load_from_string(blob), onnx.load_from_string(full)
    assert not lean.metadata_props and not lean.doc_string and orig.metadata_props
    assert lean.graph.SerializeToString() == orig.graph.SerializeToString()
    assert lean.opset_import == orig.opset_import and lean.ir_version == orig.ir_version
    assert lean_onnx(blob) == blob and len(blob) < len(full) - 2000
    with pytest.raises(ValueError, match="truncated"):
        lean_onnx(full[:-3])
    assert_within(dimuon, decompress(out), Bound.parse("rel:1e-3"))


def test_model_format_1_directories_still_load(tmp_path, dimuon):
    """A model exported before format 2 (no decoder_io / exact) is the float32 interface."""
    from balerc.train import TrainConfig, export, fit

    old = tmp_path / "v1"
    cfg = TrainConfig(physics="off", epochs=3, search_steps=20, search_rows=2048, threads=1)
    export(fit(dimuon, cfg), old)
    man = json.loads((old / "model.json").read_text())
    assert man["model_format_version"] == 2 and man["decoder_io"] == "normalized-float32"
    man["model_format_version"] = 1
    del man["decoder_io"], man["exact"]
    (old / "model.json").write_text(json.dumps(man))
    bundle = ModelBundle.load(old)
    assert not bundle.io64 and bundle.exact == []
    from balerc.formats.container import ContainerReader

    for bound, mode in (("rel:1e-3", "p"), ("pwrel:1e-3", "s")):  # range-sized drift allowance
        buf = io.BytesIO()
        compress_with_model(dimuon, buf, model_dir=old, bound=bound, keep_model=True, threads=2,
                            chunk_rows=1500)
        assert_within(dimuon, decompress(buf.getvalue(), threads=2), Bound.parse(bound))
        with ContainerReader(buf.getvalue()) as r:
            assert r.footer["summary"]["modes"].get(mode, 0) > 0  # the model was used
    man["model_format_version"] = 3
    (old / "model.json").write_text(json.dumps(man))
    with pytest.raises(InputError, match="model format version 3 is not supported"):
        ModelBundle.load(old)


def test_a_missing_stream_is_refused_before_the_decoder_runs(dimuon, model_dir):
    """A chunk whose metadata names streams it lacks ran the decoder over all its rows
    (minutes for a crafted chunk of millions) before failing: checked first now."""
    from balerc.codec.reader import coders_from_header
    from balerc.formats.errors import SchemaError

    out = io.BytesIO()
    compress_with_model(dimuon, out, model_dir=model_dir, bound="rel:1e-3", keep_model=True)
    with ContainerReader(out.getvalue()) as r:
        coder = coders_from_header(r.header, attachment=r.read_attachment)[0]
        info, streams = r.chunk(0), r.read_chunk(0)
    meta = info.meta.get("0", {})
    assert "p" in meta["modes"] and meta.get("grouped") == 2  # predicted codes in the qgroup
    ran = []
    coder._decode_prediction = lambda *a: ran.append(1)  # must not be reached
    with pytest.raises(SchemaError, match=r"stream 'res/\d+' is missing"):
        coder.decode(streams, info.rows, dict(meta, grouped=1))  # version 1 groups no p codes
    assert not ran
