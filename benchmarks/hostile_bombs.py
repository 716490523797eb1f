"""Time and measure reading each crafted hostile file, each in a fresh process.

    python benchmarks/hostile_bombs.py [--files DIR] [--mem-limit-gib 8] [--timeout 120]

For every file of tests/fixtures/hostile/manifest.json (made by make_hostile.py) and for
``read_container(f)`` and ``read_container(f, recover=True)``, a child process imports
balerc, notes its peak RSS, reads the file and reports the outcome (exception class, or
rows), the wall time of the read and the child's peak RSS (ru_maxrss). The child runs
under an address-space limit (RLIMIT_AS) so a bomb cannot take the machine down.

Target: each file refused (a typed error) in under a second without allocating (growth
within the allowance below), or decoded within 2x the memory its honest output needs (the table the file was made from; the growth allowance
never goes below 64 MiB, the price of a first decode: NumPy buffers, an ONNX session).
Exit status 1 when a row misses the target or its expected outcome.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "fixtures" / "hostile"
FLOOR = 64 << 20  # growth allowed to any read, whatever its honest output

_CHILD = r"""
import json, resource, sys, time, warnings
from balerc.codec.pipeline import read_container
from balerc.formats.container import RecoveryWarning
from balerc.formats.errors import BalercError
path, recover = sys.argv[1], sys.argv[2] == "1"
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"base_kib": base}
t0 = time.perf_counter()
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = read_container(path, recover=True) if recover else read_container(path)
    out["outcome"] = "rows"
    out["rows"] = t.n_rows
    out["warned"] = any(issubclass(w.category, RecoveryWarning) for w in caught)
except BalercError as exc:
    out["outcome"] = type(exc).__name__
    out["typed"] = True
    out["message"] = str(exc)[:200]
except BaseException as exc:
    out["outcome"] = type(exc).__name__
    out["typed"] = False
    out["message"] = str(exc)[:200]
out["wall_s"] = time.perf_counter() - t0
out["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps(out))
"""


def _limit(mem: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

    return apply


def run_child(path: Path, recover: bool, mem: int, timeout: float) -> dict[str, Any]:
    """Read one file in a fresh interpreter; returns what the child reported."""
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), "1" if recover else "0"],
                              capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_limit(mem), cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "typed": False, "wall_s": timeout, "peak_kib": 0,
                "base_kib": 0}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
    return {"outcome": f"died ({proc.returncode})", "typed": False, "wall_s": 0.0,
            "peak_kib": 0, "base_kib": 0, "message": tail[0][:200]}


def verdict(res: dict[str, Any], expected: str, honest: int) -> tuple[bool, str]:
    """(meets the target and the expectation, why not)."""
    growth = max(0, res["peak_kib"] - res["base_kib"]) * 1024
    options = expected.split("|")
    if res["outcome"] == "rows":
        prefixes = [int(o.split(":")[1]) for o in options if o.startswith("prefix:")]
        whole = [int(o.split(":")[1]) for o in options if o.startswith("rows:")]
        if res["rows"] in whole and not res.get("warned"):
            prefixes = whole
        elif not prefixes:
            return False, f"decoded, expected {expected}"
        elif res["rows"] not in prefixes or not res.get("warned"):
            return False, f"{res['rows']} rows (warned={res.get('warned')}), expected {expected}"
        if growth > max(2 * honest, FLOOR):
            return False, f"growth {growth >> 20} MiB over 2x honest"
        return True, ""
    if not res.get("typed"):
        return False, "not a typed error"
    if res["outcome"] not in options:
        return False, f"expected {expected}"
    if res["wall_s"] >= 1.0:
        return False, "refused, but not under 1 s"
    if growth > max(2 * honest, FLOOR):
        return False, f"refused after growing {growth >> 20} MiB"
    return True, ""


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 when a row misses the target."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=Path, default=HOSTILE)
    ap.add_argument("--mem-limit-gib", type=float, default=8.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args(argv)
    manifest = json.loads((a.files / "manifest.json").read_text())
    mem = int(a.mem_limit_gib * 2**30)
    print(f"RLIMIT_AS {a.mem_limit_gib:g} GiB per child; RSS in MiB (peak = child ru_maxrss, "
          f"growth = peak - after imports)\n")
    print("| file | mode | outcome | expected | peak RSS | growth | wall s | honest output | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    failed = 0
    for name, m in manifest.items():
        for mode in ("default", "recover"):
            expected = "|".join(m["default"]) if mode == "default" else m["recover"]
            res = run_child(a.files / name, mode == "recover", mem, a.timeout)
            ok, why = verdict(res, expected, m["honest_bytes"])
            failed += not ok
            shown = res["outcome"] if res["outcome"] != "rows" else f"{res['rows']} rows"
            growth = max(0, res["peak_kib"] - res["base_kib"]) / 1024
            print(f"| {name} | {mode} | {shown} | {expected.replace('|', ' or ')} | "
                  f"{res['peak_kib'] / 1024:.0f} | {growth:.0f} | {res['wall_s']:.3f} | "
                  f"{m['honest_bytes']:,} B | {'yes' if ok else 'NO: ' + why} |")
    print(f"\n{failed} row(s) miss the target" if failed else "\nevery row meets the target")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
