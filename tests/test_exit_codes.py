"""What the CLI tells the user about damaged files and killed runs: exit codes that tell
the truth, one-line messages, and no temporary files left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from balerc.codec.ae import compress_with_model
from balerc.formats import toy
from balerc.formats.fileio import TMP_TAG

BALERC = [sys.executable, "-m", "balerc.cli"]


def balerc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*BALERC, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A 4-chunk pwrel file and its source table."""
    d = tmp_path_factory.mktemp("exit")
    t = toy.dimuon(4000, seed=3)
    np.savez(d / "t.npz", data=np.stack([t[n] for n in t.names], axis=1), names=np.array(t.names))
    compress_with_model(t, d / "t.balerc", model_dir=None, bound="pwrel:1e-3", chunk_rows=1000)
    return d


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and "chunks," not in ln]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_truncated_file_fails_without_recover(made, tmp_path):
    data = (made / "t.balerc").read_bytes()
    cut = tmp_path / "cut.balerc"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    r = balerc("decompress", str(cut), "-o", str(tmp_path / "out.npz"), "-q")
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "no footer" in line and "--recover" in line and "rows" in line
    assert not (tmp_path / "out.npz").exists()
    assert not list(tmp_path.glob(f"*{TMP_TAG}*"))


def test_truncated_file_with_recover_writes_the_prefix(made, tmp_path):
    data = (made / "t.balerc").read_bytes()
    cut = tmp_path / "cut.balerc"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    r = balerc("decompress", str(cut), "-o", str(tmp_path / "out.npz"), "--recover")
    assert r.returncode == 0, r.stderr
    assert "recovered the first 2,000 rows" in r.stderr
    back = np.load(tmp_path / "out.npz", allow_pickle=False)
    t = toy.dimuon(4000, seed=3)
    for name in t.names_of_kind("float"):
        got, want = back[name], t[name][:2000]
        assert len(got) == 2000
        assert np.all(np.abs(got - want) <= 1e-3 * np.abs(want)), name


def test_nothing_recoverable_fails_even_with_recover(made, tmp_path):
    data = (made / "t.balerc").read_bytes()
    cut = tmp_path / "cut.balerc"
    cut.write_bytes(data[:2000])  # header and part of the first chunk
    r = balerc("decompress", str(cut), "-o", str(tmp_path / "out.csv"), "--recover", "-q")
    assert r.returncode == 2 and "no complete chunk" in r.stderr
    assert not (tmp_path / "out.csv").exists()


def test_info_reports_an_unfinished_file(made, tmp_path):
    data = (made / "t.balerc").read_bytes()
    cut = tmp_path / "cut.balerc"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    r = balerc("info", str(cut))
    assert r.returncode == 1
    assert "incomplete: no footer" in r.stdout and "decompress --recover" in r.stdout
    assert balerc("info", str(made / "t.balerc")).returncode == 0


def test_info_on_a_damaged_or_cut_file_says_what_recover_reads(made, tmp_path):
    """A flipped byte in chunk 2 had been 'checksums damaged' with `complete: true`, no
    recovery and no damaged chunk in --json; a cut file had been given ratios of a whole
    file's source to its surviving bytes."""
    import json

    from balerc.formats.container import ContainerReader

    data = bytearray((made / "t.balerc").read_bytes())
    with ContainerReader(bytes(data)) as r:
        stream = next(iter(r.chunks[2].streams.values()))
        rows_before = sum(c.rows for c in r.chunks[:2])
    data[stream.offset + stream.size // 2] ^= 0xFF
    bad = tmp_path / "flip.balerc"
    bad.write_bytes(bytes(data))
    r = balerc("info", str(bad), "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 1 and d["complete"] is False and d["damaged_chunks"] == [2]
    assert d["recovery"]["rows"] == rows_before and d["recovery"]["total_rows"] == 4000
    assert d["ratio_vs_raw"] is not None  # every byte is there: the ratio still holds
    got = balerc("decompress", str(bad), "-o", str(tmp_path / "o.npz"), "--recover", "-q",
                 "--json")
    with np.load(tmp_path / "o.npz") as back:
        assert got.returncode == 0 and {len(back[k]) for k in back.files} == {rows_before}
    said = json.loads(got.stdout)  # had looked like a whole decode
    assert said["complete"] is False and said["recovery"]["total_rows"] == 4000
    cut = tmp_path / "cut.balerc"
    cut.write_bytes(bytes(data[: len(data) * 7 // 10]))
    d = json.loads(balerc("info", str(cut), "--json").stdout)
    assert d["ratio_vs_raw"] is None and d["ratio_vs_source"] is None
    assert d["recovery"]["total_rows"] is None
    assert "no ratio: the file is cut short" in balerc("info", str(cut)).stdout


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "x.balerc"
    bad.write_bytes(b"not balerc at all")
    r = balerc("info", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = balerc("--debug", "info", str(bad))
    assert r.returncode != 0 and "Traceback" in r.stderr


def _start_slow_compress(made: Path, out: Path) -> subprocess.Popen:
    big = made / "big.npz"
    if not big.exists():
        t = toy.dimuon(300_000, seed=1)
        np.savez(big, data=np.stack([t[n] for n in t.names], axis=1), names=np.array(t.names))
    return subprocess.Popen(
        [*BALERC, "compress", str(big), "-o", str(out), "--error-bound", "pwrel:5e-4",
         "--threads", "1", "--zstd-level", "19", "--chunk-rows", "20000", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_tmp(out: Path, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.parent.glob(f".{out.name}{TMP_TAG}*"))
        if found and found[0].stat().st_size > 0:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no temporary output appeared: {proc.poll()} {proc.stderr.read() if proc.stderr else ''}")


def test_sigterm_removes_the_temporary_output(made, tmp_path):
    out = tmp_path / "o.balerc"
    proc = _start_slow_compress(made, out)
    _wait_for_tmp(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(f"*{TMP_TAG}*"))


def test_stale_temporary_from_sigkill_is_recognised_and_removed(made, tmp_path):
    out = tmp_path / "o.balerc"
    proc = _start_slow_compress(made, out)
    tmp = _wait_for_tmp(out, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert tmp.exists()  # nothing can run on SIGKILL
    r = balerc("compress", str(made / "t.npz"), "-o", str(out), "--error-bound", "rel:1e-3", "-q")
    assert r.returncode == 0, r.stderr
    assert f"removed {tmp}" in r.stderr and f"pid {proc.pid}" in r.stderr
    assert not tmp.exists() and out.exists()


HOSTILE = Path(__file__).parent / "fixtures" / "hostile"


@pytest.mark.parametrize(("name", "words"), [
    ("bomb_column_4gib.balerc", ["declares 4,294,967,296 bytes"]),
    ("bomb_header_3gib.balerc", ["header", "over the limit"]),
    ("chunks_swapped.balerc", ["says it is chunk 2", "swapped"]),
    ("mode_letter_z.balerc", ["chunk 1", "mode letter 'z' (unknown)"]),
    ("schema_duplicate_names.balerc", ["column name 'E1' appears twice"]),
    ("footer_chunk0_2m.balerc", ["footer"]),
])
def test_cli_refuses_hostile_files_in_one_line(name, words, tmp_path):
    """Exit 2, one line naming the file and what is wrong, nothing written, with and
    without --recover for damage recovery cannot skip."""
    out = tmp_path / "o.npz"
    r = balerc("decompress", str(HOSTILE / name), "-o", str(out), "-q")
    line = _one_line(r.stderr)
    assert r.returncode == 2 and line.startswith(f"balerc: error: {HOSTILE / name}")
    for w in words:
        assert w in line, line
    assert not out.exists() and not list(tmp_path.glob(f"*{TMP_TAG}*"))


def test_help_and_usage_errors_keep_clicks_exit_codes():
    assert balerc("info", "--help").returncode == 0
    r = balerc("info")
    assert r.returncode == 2 and "Missing argument" in r.stderr and "internal error" not in r.stderr


def test_default_output_names_stdio_and_json(made, tmp_path):
    """zstd's habits: a default output name, '-' for stdin/stdout, --json for machines."""
    import json
    import shutil

    src = tmp_path / "t.npz"
    shutil.copy(made / "t.npz", src)
    r = balerc("compress", str(src), "--error-bound", "abs:0.01", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["output"] == str(tmp_path / "t.balerc") and summary["rows"] == 4000
    r = balerc("decompress", str(tmp_path / "t.balerc"), "-q")  # would be t.npz: exists
    assert r.returncode == 2 and "t.npz already exists" in r.stderr
    (tmp_path / "t.npz").unlink()
    assert balerc("decompress", str(tmp_path / "t.balerc"), "-q").returncode == 0
    assert (tmp_path / "t.npz").exists()  # the recorded source format
    # compress to stdout, decompress from stdin to CSV on stdout
    blob = subprocess.run([*BALERC, "compress", str(src), "-o", "-", "--error-bound", "abs:0.01",
                           "-q"], capture_output=True, timeout=120)
    assert blob.returncode == 0 and blob.stdout.startswith(b"\x89BLR")
    csv = subprocess.run([*BALERC, "decompress", "-", "-o", "-", "-q"], input=blob.stdout,
                         capture_output=True, timeout=120)
    lines = csv.stdout.decode().splitlines()
    assert csv.returncode == 0 and len(lines) == 4001 and lines[0].startswith("Run,Event,E1")
    nameless = subprocess.run([*BALERC, "decompress", "-"], input=blob.stdout,
                              capture_output=True, timeout=120)
    assert nameless.returncode == 2 and b"say where to write with -o" in nameless.stderr


def test_sigterm_ends_the_process_even_with_work_in_flight():
    """Worker threads (ONNX Runtime runs of a hostile decoder) kept a SIGTERMed process
    alive for minutes: the unwinding waited for them. It now exits after a grace period."""
    code = ("import os, signal, threading, time\n"
            "from balerc.cli import main as m\n"
            "m.TERM_GRACE_S = 0.5\n"
            "signal.signal(signal.SIGTERM, m._terminate)\n"
            "threading.Thread(target=time.sleep, args=(60,)).start()\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(60)\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=50)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert time.monotonic() - t0 < 30 and "terminated" in proc.stderr
