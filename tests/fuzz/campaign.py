"""A fuzz campaign over the seed corpus: N random + M structural mutations, one report.

    python -m tests.fuzz.campaign --random 20000 --structural 6000 --seed 1 \\
        --out /tmp/balerc-fuzz-report.md --save /tmp/balerc-fuzz-repro

Cases are generated deterministically from (--seed, case number), run in worker processes
(runner.Worker: time limit, address-space limit) and counted per outcome and seed kind.
Every distinct untyped-exception site, hang, crash, silent difference and accepted invalid
file gets one reproducer under --save (``NAME.balerc`` + ``NAME.txt`` saying what it is).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any

from . import mutators as mu
from .runner import MEM_LIMIT, TIME_LIMIT, Attempt, CaseResult, Worker, supports_recover
from .seeds import CORPUS, load_corpus

BAD = ("untyped", "hang", "crash", "silent-difference")
OUTCOMES = ("identical", "typed", "recovered", "different-valid", "accepted-invalid",
            "unrequested-recovery", "silent-difference", "untyped", "hang", "crash",
            "mutator-error")


@dataclass
class Config:
    random: int = 2000
    structural: int = 1000
    seed: int = 1
    workers: int = 2
    time_limit: float = TIME_LIMIT
    mem_limit: int = MEM_LIMIT
    as21: float = 0.25
    corpus: Path = CORPUS
    save: Path | None = Path("/tmp/balerc-fuzz-repro")
    log: Path | None = None
    progress: bool = True


@dataclass
class Case:
    """One executed case, flattened for counting and reporting."""

    case_id: str
    seed: str
    kind: str  # random | structural
    mutation: str
    detail: str
    expect: str
    labels: dict[str, str]  # mode -> outcome label
    attempts: dict[str, Attempt]
    data: bytes = b""


@dataclass
class Summary:
    """Everything a report needs; `bad` counts what CI asserts to be zero."""

    config: Config
    cases: list[Case] = field(default_factory=list)
    seconds: float = 0.0
    recover_supported: bool = False
    repro: dict[str, str] = field(default_factory=dict)  # finding key -> reproducer path

    def count(self, label: str, kind: str | None = None) -> int:
        return sum(1 for c in self.cases for lab in c.labels.values()
                   if lab == label and (kind is None or c.kind == kind))

    @property
    def bad(self) -> dict[str, int]:
        """Counts that must be zero (a prefix without recover=True too, once it exists)."""
        out = {b: self.count(b) for b in BAD}
        if self.recover_supported:
            out["unrequested-recovery"] = self.count("unrequested-recovery")
        out["mutator-error"] = self.count("mutator-error")
        return out


# ------------------------------------------------------------------------------ labels
def label_of(att: Attempt, mode: str, m: mu.Mutation) -> str:
    """The report's outcome label for one attempt of one mutation."""
    o = att.outcome
    if o == "different":
        if m.kind == "random":
            return "silent-difference"
        return "accepted-invalid" if m.expect == mu.REFUSE else "different-valid"
    if o == "recovered" and mode == "default":
        return "unrequested-recovery"
    return o


def site_key(att: Attempt) -> str:
    return f"{att.site} {att.detail}"


# ------------------------------------------------------------------------------ cases
def _make(i: int, cfg: Config, targets: list[mu.Target]) -> tuple[str, mu.Target, mu.Mutation]:
    structural = i >= cfg.random
    k = i - cfg.random if structural else i
    case_id = f"{'s' if structural else 'r'}{k}"
    rng = random.Random(f"{cfg.seed}:{case_id}")
    t = targets[k % len(targets)]
    if structural:
        as21 = rng.random() < cfg.as21
        m = mu.structural_mutation(rng, t, as21=as21)
        if as21 and t.parts.version == (2, 0):
            m.name += "@2.1"
    else:
        m = mu.random_mutation(rng, t, targets)
    return case_id, t, m


def _run_one(i: int, cfg: Config, targets: list[mu.Target], workers: Queue[Worker]) -> Case:
    try:
        case_id, t, m = _make(i, cfg, targets)
    except Exception as exc:  # a mutator bug: counted, never fatal
        att = Attempt("mutator-error", type(exc).__name__, message=str(exc)[:200])
        return Case(f"x{i}", "?", "structural" if i >= cfg.random else "random", "?", "",
                    "any", {"default": "mutator-error"}, {"default": att})
    seed = m.as_seed or t.name  # a splice that is wholly the other seed's file
    w = workers.get()
    try:
        res: CaseResult = w.run(seed, m.data, as_path=i % 2 == 1)
    finally:
        workers.put(w)
    attempts = dict(res.attempts())
    labels = {mode: label_of(a, mode, m) for mode, a in attempts.items()}
    keep = any(lab in BAD or lab == "accepted-invalid" for lab in labels.values()) or any(
        a.rss_growth > 256 << 20 for a in attempts.values())
    return Case(case_id, seed, m.kind, m.name, m.detail, m.expect, labels, attempts,
                m.data if keep else b"")


def run_campaign(cfg: Config) -> Summary:
    """Run every case of the campaign; reproducers and the log are written as it goes."""
    seeds = load_corpus(cfg.corpus)
    targets = [mu.Target.of(s.name, s.data) for s in seeds]
    summary = Summary(cfg, recover_supported=supports_recover())
    pool: Queue[Worker] = Queue()
    workers = [Worker(cfg.corpus, cfg.mem_limit, cfg.time_limit) for _ in range(cfg.workers)]
    for w in workers:
        pool.put(w)
    saver = Saver(cfg.save)
    log = open(cfg.log, "w") if cfg.log else None
    t0 = time.perf_counter()
    total = cfg.random + cfg.structural
    lock = threading.Lock()
    try:
        with ThreadPoolExecutor(cfg.workers) as ex:
            for n, case in enumerate(ex.map(lambda i: _run_one(i, cfg, targets, pool),
                                            range(total)), 1):
                with lock:
                    saver.consider(case)
                    case.data = b""
                    summary.cases.append(case)
                    if log:
                        log.write(json.dumps(_case_json(case)) + "\n")
                if cfg.progress and (n % 500 == 0 or n == total):
                    _progress(summary, n, total, time.perf_counter() - t0)
    finally:
        for w in workers:
            w.stop()
        if log:
            log.close()
    summary.seconds = time.perf_counter() - t0
    summary.repro = saver.paths
    summary.cases.sort(key=lambda c: (c.kind != "random", int(re.sub(r"\D", "", c.case_id) or 0)))
    return summary


def _progress(summary: Summary, n: int, total: int, secs: float) -> None:
    counts = Counter(lab for c in summary.cases for lab in c.labels.values())
    text = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    print(f"[{n}/{total} {secs:.0f}s] {text}", file=sys.stderr, flush=True)


def _case_json(case: Case) -> dict[str, Any]:
    return {"id": case.case_id, "seed": case.seed, "kind": case.kind, "mutation": case.mutation,
            "detail": case.detail[:300], "expect": case.expect, "labels": case.labels,
            "attempts": {k: vars(a) for k, a in case.attempts.items()}}


# ------------------------------------------------------------------------------ reproducers
class Saver:
    """Keeps one reproducer per distinct finding (site, hang, crash, difference, memory)."""

    def __init__(self, directory: Path | None):
        self.dir = directory
        self.paths: dict[str, str] = {}
        if directory:
            directory.mkdir(parents=True, exist_ok=True)

    def keys(self, case: Case) -> Iterator[str]:
        """The findings a case shows (one reproducer is kept per key)."""
        for mode, lab in case.labels.items():
            att = case.attempts[mode]
            if lab in ("untyped", "hang", "crash"):
                yield f"{lab}: {site_key(att)}"
            elif lab in ("silent-difference", "accepted-invalid"):
                yield f"{lab}: {case.mutation.split('+')[0]}"
            if att.rss_growth > 256 << 20:
                yield f"memory: {case.mutation.split('+')[0]} {att.outcome} {att.detail}"

    def consider(self, case: Case) -> None:
        """Save the case if it is the first of one of its findings."""
        for key in self.keys(case):
            if key in self.paths or not case.data:
                continue
            slug = re.sub(r"[^A-Za-z0-9]+", "_", key)[:80].strip("_")
            name = f"{slug}__{case.seed}_{case.case_id}"
            if self.dir is None:
                self.paths[key] = "(not saved)"
                continue
            path = self.dir / f"{name}.balerc"
            path.write_bytes(case.data)
            (self.dir / f"{name}.txt").write_text(json.dumps(_case_json(case), indent=1) + "\n")
            self.paths[key] = str(path)


# ------------------------------------------------------------------------------ report
def _table(rows: dict[str, Counter[str]], cols: list[str]) -> list[str]:
    head = "| seed kind | " + " | ".join(cols) + " | total |"
    out = [head, "|" + "---|" * (len(cols) + 2)]
    total: Counter[str] = Counter()
    for name in sorted(rows):
        c = rows[name]
        total.update(c)
        out.append(f"| {name} | " + " | ".join(str(c.get(k, 0) or "") for k in cols)
                   + f" | {sum(c.values())} |")
    out.append("| **all** | " + " | ".join(f"**{total.get(k, 0)}**" for k in cols)
               + f" | **{sum(total.values())}** |")
    return out


def _outcome_tables(summary: Summary) -> list[str]:
    lines = []
    for kind in ("random", "structural"):
        for mode in ("default", "recover"):
            rows: dict[str, Counter[str]] = defaultdict(Counter)
            for c in summary.cases:
                if c.kind == kind and mode in c.labels:
                    rows[c.seed][c.labels[mode]] += 1
            if not rows:
                continue
            cols = [o for o in OUTCOMES if any(r.get(o) for r in rows.values())]
            title = "read_container(f)" if mode == "default" else "read_container(f, recover=True)"
            lines += [f"### {kind} mutations: {title}", ""] + _table(rows, cols) + [""]
    return lines


def _typed_table(summary: Summary) -> list[str]:
    c: Counter[str] = Counter(a.detail for case in summary.cases for a in case.attempts.values()
                              if a.outcome == "typed")
    lines = ["### Typed errors by class", "", "| class | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in c.most_common()]
    return lines + [""]


def _findings(summary: Summary) -> list[str]:
    groups: dict[str, list[tuple[Case, str]]] = defaultdict(list)
    for case in summary.cases:
        for mode, lab in case.labels.items():
            att = case.attempts[mode]
            if lab in ("untyped", "hang", "crash"):
                groups[f"{lab}: {site_key(att)}"].append((case, mode))
            elif lab in ("silent-difference", "accepted-invalid"):
                groups[f"{lab}: {case.mutation.split('+')[0]}"].append((case, mode))
    lines = []
    for section, prefixes in (("Untyped exception sites", ("untyped",)),
                              ("Hangs and crashes", ("hang", "crash")),
                              ("Silent differences (random mutations)", ("silent-difference",)),
                              ("Invalid files accepted (structural, expect=refuse)",
                               ("accepted-invalid",))):
        keys = sorted((k for k in groups if k.split(":")[0] in prefixes),
                      key=lambda k: -len(groups[k]))
        lines += [f"## {section} ({len(keys)} distinct, {sum(len(groups[k]) for k in keys)} "
                  f"attempts)", ""]
        if keys:
            lines += ["| site / mutation | exception | count | modes | example | reproducer |",
                      "|---|---|---|---|---|---|"]
        for k in keys:
            case, mode = groups[k][0]
            att = case.attempts[mode]
            modes = "/".join(sorted({md for _, md in groups[k]}))
            where = att.site if att.site else k.split(": ", 1)[1]
            ex = f"{att.detail}: {att.message[:90]}" if att.outcome != "different" else \
                f"rows={att.rows}"
            example = f"{case.seed} {case.case_id} {case.mutation}: {case.detail[:90]}"
            lines.append(f"| `{where}` | {_md(ex)} | {len(groups[k])} | {modes} | {_md(example)} "
                         f"| {summary.repro.get(k, '')} |")
        lines.append("")
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _resources(summary: Summary) -> list[str]:
    atts = [(a, c, m) for c in summary.cases for m, a in c.attempts.items()]
    lines = ["## Memory and time", "", "Largest peak-RSS growth per attempt:", "",
             "| case | mutation | outcome | RSS growth MiB | seconds |", "|---|---|---|---|---|"]
    for a, c, m in sorted(atts, key=lambda x: -x[0].rss_growth)[:10]:
        lines.append(f"| {c.seed} {c.case_id} {m} | {_md(c.detail[:80])} | {a.outcome} "
                     f"{a.detail} | {a.rss_growth / 2**20:.0f} | {a.seconds:.2f} |")
    lines += ["", "Slowest attempts:", "", "| case | mutation | outcome | seconds |",
              "|---|---|---|---|"]
    for a, c, m in sorted(atts, key=lambda x: -x[0].seconds)[:10]:
        lines.append(f"| {c.seed} {c.case_id} {m} | {_md(c.detail[:80])} | {a.outcome} "
                     f"{a.detail} | {a.seconds:.2f} |")
    return lines + [""]


def report(summary: Summary) -> str:
    """The campaign report as Markdown."""
    cfg = summary.config
    n = len(summary.cases)
    lines = [
        "# balerc fuzz campaign", "",
        f"{cfg.random} random + {cfg.structural} structural mutations, seed {cfg.seed}, "
        f"{len({c.seed for c in summary.cases})} seed files, {cfg.workers} workers, "
        f"{summary.seconds:.0f} s ({n / max(summary.seconds, 1e-9):.0f} cases/s); time limit "
        f"{cfg.time_limit:g} s, RLIMIT_AS {cfg.mem_limit / 2**30:g} GiB; "
        f"read_container(recover=) {'supported' if summary.recover_supported else 'absent'}; "
        f"{cfg.as21:.0%} of structural cases on 2.0 seeds rewritten as format 2.1.", "",
        "Must be zero: " + ", ".join(f"{k} **{v}**" for k, v in summary.bad.items()), "",
        "Outcomes: identical / typed (BalercError) / recovered (RecoveryWarning + correct "
        "prefix) / different-valid (structural edit, checksums fixed, plausible) / "
        "accepted-invalid (structural edit that must be refused, decoded to other data) / "
        "unrequested-recovery (a prefix returned without recover=True) / silent-difference "
        "(random damage decoded to other data) / untyped / hang / crash (worker died).", "",
    ]
    lines += _outcome_tables(summary) + _typed_table(summary)
    lines += _findings(summary) + _resources(summary)
    errs = [c for c in summary.cases if "mutator-error" in c.labels.values()]
    if errs:
        lines += [f"## Mutator errors ({len(errs)})", ""]
        lines += [f"- {c.case_id}: {c.attempts['default'].detail} {c.attempts['default'].message}"
                  for c in errs[:20]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The CLI: run, write the report, exit 1 when a must-be-zero count is not."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=2000, help="random byte-level mutations")
    ap.add_argument("--structural", type=int, default=1000, help="structural mutations")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/balerc-fuzz-report.md"))
    ap.add_argument("--save", type=Path, default=Path("/tmp/balerc-fuzz-repro"))
    ap.add_argument("--log", type=Path, default=None, help="JSON lines, one per case")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT)
    ap.add_argument("--mem-limit-gib", type=float, default=MEM_LIMIT / 2**30)
    ap.add_argument("--as21", type=float, default=0.25,
                    help="fraction of structural cases on 2.0 seeds rewritten as format 2.1")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    cfg = Config(a.random, a.structural, a.seed, a.workers, a.time_limit,
                 int(a.mem_limit_gib * 2**30), a.as21, a.corpus, a.save, a.log, not a.quiet)
    summary = run_campaign(cfg)
    text = report(summary)
    a.out.write_text(text)
    print(text)
    return 1 if any(summary.bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
