#!/usr/bin/env python3
"""Ledger benchmarks: custodes beside pymerkle and bare hashlib, in one run.

1. Batch append throughput over the same entries: ``Ledger.append_many`` in batches of JSON
   objects, pymerkle's ``SqliteTree.append_entries`` fed the same entries as bytes (compact,
   sorted-key ``json.dumps``) in the same batches, and bare ``hashlib.sha256`` of those bytes
   (leaf hashing only: the physical limit).
2. Inclusion-proof latency (p50/p99) of ``Ledger.prove`` on ledgers of 1M and 10M entries
   (cached under ``benchmarks/.work/``), every proof verified; pymerkle's ``prove_inclusion``
   at the append size for comparison.
3. Durable appends per second from concurrent writers on one SQLite ledger: N processes of
   ``custodes ledger append`` fed JSON lines through pipes with the acks read back, and, as a
   reference, N processes x 16 threads calling ``Ledger.append`` one entry at a time. The
   ledger is checked afterwards with ``custodes ledger verify``.

Run ``python benchmarks/ledger_bench.py`` (``make bench``); ``--quick`` for a smoke run well
under a minute; ``--json FILE`` to keep the figures; ``--help`` for the sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from custodes.ledger.log import Ledger

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
ORIGIN = "bench.custodes.example/ledger"

TARGET_APPEND_VS_PYMERKLE = 2.0
TARGET_PROOF_P99_MS = 1.0
TARGET_PROOF_SIZE = 10_000_000
TARGET_DURABLE_PER_S = 10_000.0

_ACTIONS = ("merge", "deploy", "llm.completion", "secret.scan", "review", "release", "login")


# -- entries ------------------------------------------------------------------------------


def make_entry(i: int) -> dict[str, Any]:
    """A typical decision entry (~264 bytes of compact JSON); distinct for every ``i``."""
    return {
        "kind": "decision",
        "actor": f"user-{i % 997}@example.com",
        "action": _ACTIONS[i % 7],
        "resource": f"repo/project-{i % 113}/src/module_{i % 4099}/file_{i}.py",
        "decision": "deny" if i % 5 == 0 else "allow",
        "policy": "secrets-gate/v3",
        "reason": "no secret patterns in the diff",
        "score": i % 100,
        "seq": i,
        "tags": ["ci", f"pr-{i % 5000}"],
    }


def entry_bytes(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


# -- small helpers ------------------------------------------------------------------------


def note(message: str) -> None:
    """Progress on stderr, so stdout keeps only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".key"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def db_bytes(path: Path) -> int:
    return sum(
        Path(str(path) + suffix).stat().st_size
        for suffix in ("", "-wal", "-shm", "-journal")
        if Path(str(path) + suffix).exists()
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def _short_revision(revision: str | None) -> str:
    if not revision or revision == "unknown":
        return ""
    return f" @{revision.split()[0]}" + ("+edits" if "uncommitted" in revision else "")


def _maybe_int(value: float | None) -> str:
    return "-" if value is None else fmt_int(value)


def fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{value:,.0f} B"
        value /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 86 - len(title)), flush=True)


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fsync_latency_ms(folder: Path, rounds: int = 100) -> float:
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = os.urandom(4096)
        samples = []
        for _ in range(rounds):
            os.pwrite(fd, block, 0)
            start = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return statistics.median(samples) * 1e3


def cpu_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat), or NaN off Linux."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return float("nan")
    fields = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds used by this process and its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def other_cpu_now(seconds: float = 1.0) -> float:
    """Cores kept busy by other programs right now (we sleep while measuring)."""
    busy = cpu_busy_s()
    time.sleep(seconds)
    return max(0.0, (cpu_busy_s() - busy) / seconds)


def source_revision() -> str:
    """The commit the benchmarked custodes comes from, flagged if src/ has uncommitted edits."""
    root = str(HERE.parent)
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else "")


def machine_info(folder: Path) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        pymerkle_version = version("pymerkle")
    except Exception:  # not installed
        pymerkle_version = None
    from custodes import __version__

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "custodes": __version__,
        "pymerkle": pymerkle_version,
        "fsync_ms_median": round(fsync_latency_ms(folder), 3),
        "source": source_revision(),
        "other_cores_busy_at_start": round(other_cpu_now(), 2),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- 1. batch append ----------------------------------------------------------------------


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def bench_append(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n, batch = args.append_n, args.batch
    note(f"append: preparing {n:,} entries")
    entries = [make_entry(i) for i in range(n)]
    blobs = [entry_bytes(e) for e in entries]
    ranges = _batches(n, batch)
    mean_bytes = sum(map(len, blobs)) / n

    def run_hashlib() -> None:
        sha = hashlib.sha256
        for blob in blobs:
            sha(blob).digest()

    runs: dict[str, list[float]] = {
        "hashlib": [],
        "pymerkle": [],
        "pymerkle_dumps": [],
        "custodes": [],
    }
    custodes_db = tmp / "append-custodes.db"
    pymerkle_db = tmp / "append-pymerkle.db"
    SqliteTree = _pymerkle_tree()

    for rep in range(args.repeat):
        note(f"append: round {rep + 1} of {args.repeat}")
        runs["hashlib"].append(timed(run_hashlib))

        if SqliteTree is not None:
            remove_db(pymerkle_db)
            tree = SqliteTree(str(pymerkle_db))
            runs["pymerkle"].append(
                timed(lambda tree=tree: [tree.append_entries(blobs[a:b]) for a, b in ranges])
            )
            assert tree.get_size() == n, "pymerkle tree has the wrong size"
            tree.close()

            # The same, serialising inside the timed loop as custodes has to.
            dumps_db = tmp / "append-pymerkle-dumps.db"
            remove_db(dumps_db)
            tree = SqliteTree(str(dumps_db))
            runs["pymerkle_dumps"].append(
                timed(
                    lambda tree=tree: [
                        tree.append_entries([entry_bytes(e) for e in entries[a:b]])
                        for a, b in ranges
                    ]
                )
            )
            tree.close()
            remove_db(dumps_db)

        remove_db(custodes_db)
        led = Ledger.create(custodes_db, name=ORIGIN)
        runs["custodes"].append(
            timed(lambda led=led: [led.append_many(entries[a:b]) for a, b in ranges])
        )
        assert led.size() == n, "custodes ledger has the wrong size"
        led.close()

    rates = {name: [n / s for s in secs] for name, secs in runs.items() if secs}
    median = {name: statistics.median(r) for name, r in rates.items()}
    result: dict[str, Any] = {
        "entries": n,
        "batch": batch,
        "repeat": args.repeat,
        "mean_entry_bytes": round(mean_bytes, 1),
        "entries_per_s": {k: round(v) for k, v in median.items()},
        "runs_entries_per_s": {k: [round(x) for x in v] for k, v in rates.items()},
        "db_bytes": {"custodes": db_bytes(custodes_db)},
        "custodes_db": str(custodes_db),
        "pymerkle_db": str(pymerkle_db) if SqliteTree is not None else None,
    }
    if SqliteTree is not None:
        result["db_bytes"]["pymerkle"] = db_bytes(pymerkle_db)
    result["ratio_custodes_vs_pymerkle"] = (
        median["custodes"] / median["pymerkle"] if "pymerkle" in median else None
    )
    result["ratio_custodes_vs_pymerkle_dumps"] = (
        median["custodes"] / median["pymerkle_dumps"] if "pymerkle_dumps" in median else None
    )
    result["ratio_custodes_vs_hashlib"] = median["custodes"] / median["hashlib"]
    return result


def print_append(res: dict[str, Any]) -> None:
    section("1. Batch append throughput")
    n, batch = res["entries"], res["batch"]
    print(
        f"{n:,} JSON-object entries (mean {res['mean_entry_bytes']:.0f} B as compact JSON), "
        f"batches of {batch:,} (one commit each), median of {res['repeat']} round(s)"
    )
    eps = res["entries_per_s"]
    labels = {
        "custodes": "custodes Ledger.append_many (dicts)",
        "pymerkle": "pymerkle SqliteTree.append_entries (bytes)",
        "pymerkle_dumps": "pymerkle, json.dumps inside the loop",
        "hashlib": "hashlib.sha256 of the bytes (limit)",
    }
    rows = []
    for key in ("custodes", "pymerkle", "pymerkle_dumps", "hashlib"):
        if key not in eps:
            continue
        size = res["db_bytes"].get(key)
        rows.append(
            [
                labels[key],
                fmt_int(eps[key]),
                f"{1e6 / eps[key]:.2f}",
                f"{eps['custodes'] / eps[key]:.3f}",
                fmt_bytes(size) if size else "-",
            ]
        )
    print(table(["implementation", "entries/s", "us/entry", "custodes/x", "db size"], rows))
    if res["ratio_custodes_vs_pymerkle"] is None:
        print("pymerkle is not installed: pip install -e '.[bench]'")
    else:
        print(
            f"custodes/pymerkle = {res['ratio_custodes_vs_pymerkle']:.2f}x  "
            f"(target >= {TARGET_APPEND_VS_PYMERKLE:.0f}x); "
            f"with json.dumps timed for pymerkle too: {res['ratio_custodes_vs_pymerkle_dumps']:.2f}x"
        )
    print(
        f"custodes/hashlib  = {res['ratio_custodes_vs_hashlib']:.3f}x  "
        f"({res['ratio_custodes_vs_hashlib'] * 100:.1f}% of bare leaf hashing)"
    )
    print(
        "custodes also canonicalises (RFC 8785), stores bundles and hash tiles (Merkle nodes every "
        "8 levels) and signs a checkpoint per commit;\npymerkle stores entry+hash only and is fed "
        "pre-serialised bytes."
    )


def _pymerkle_tree() -> Any:
    try:
        from pymerkle import SqliteTree
    except ImportError:
        return None
    return SqliteTree


# -- 2. inclusion proofs ------------------------------------------------------------------


def _ledger_path(size: int) -> tuple[Path, Path]:
    return WORK / f"ledger-{size}.db", WORK / f"ledger-{size}.json"


def ensure_ledger(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """A ledger of ``size`` entries under benchmarks/.work/, built unless cached."""
    path, marker = _ledger_path(size)
    if not args.rebuild and marker.exists() and path.exists():
        info: dict[str, Any] = json.loads(marker.read_text())
        try:
            with Ledger.open(path) as led:
                current = led.size()
        except Exception as exc:  # e.g. a ledger of the earlier storage format (schema 1)
            note(f"proofs: cached ledger {path.name} unusable ({exc}); rebuilding")
        else:
            if current == size and info.get("size") == size:
                info["cached"] = True
                info["db_bytes"] = db_bytes(path)
                note(f"proofs: using cached {path.name} (built {info.get('built_at')})")
                return info
            note(f"proofs: cached {path.name} holds {current:,} entries; rebuilding")
    marker.unlink(missing_ok=True)
    remove_db(path)
    note(f"proofs: building a ledger of {size:,} entries in batches of {args.build_batch:,}")
    led = Ledger.create(path, name=ORIGIN)
    start = time.perf_counter()
    in_append = 0.0
    batch_rates: list[float] = []  # entries/s of each append_many call, in order
    last_note = start
    done = 0
    try:
        for a, b in _batches(size, args.build_batch):
            chunk = [make_entry(i) for i in range(a, b)]
            t0 = time.perf_counter()
            led.append_many(chunk)
            took = time.perf_counter() - t0
            in_append += took
            batch_rates.append((b - a) / took)
            done = b
            now = time.perf_counter()
            projected = (now - start) / done * size
            if done >= size // 50 and projected > args.build_budget:
                raise BuildTooSlow(
                    f"building {size:,} entries would take ~{projected / 60:.0f} min "
                    f"(> --build-budget {args.build_budget:.0f} s); stopped at {done:,}"
                )
            if now - last_note > 15:
                last_note = now
                note(
                    f"proofs: {done:,}/{size:,} entries, {done / (now - start):,.0f}/s, "
                    f"~{projected - (now - start):.0f} s to go"
                )
    except BaseException:
        led.close()
        remove_db(path)
        raise
    led.close()
    wall = time.perf_counter() - start
    info = {
        "size": size,
        "build_batch": args.build_batch,
        "build_s": round(wall, 2),
        "append_many_s": round(in_append, 2),
        "build_entries_per_s": round(size / wall),
        "append_many_entries_per_s": round(size / in_append),
        # Does appending slow down as the ledger grows?
        "first_tenth_entries_per_s": round(
            statistics.fmean(batch_rates[: max(1, len(batch_rates) // 10)])
        ),
        "last_tenth_entries_per_s": round(
            statistics.fmean(batch_rates[-max(1, len(batch_rates) // 10) :])
        ),
        "slowest_batch_entries_per_s": round(min(batch_rates)),
        "built_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "built_from": source_revision(),
        "db_bytes": db_bytes(path),
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    info["cached"] = False
    note(f"proofs: built {size:,} entries in {wall:.1f} s ({fmt_bytes(info['db_bytes'])})")
    return info


class BuildTooSlow(Exception):
    pass


def warm_page_cache(path: Path) -> float:
    """Read the database once so every proof run starts from the same (warm) OS page cache."""
    start = time.perf_counter()
    with path.open("rb") as handle:
        while handle.read(8 << 20):
            pass
    return time.perf_counter() - start


def latency_stats(ns: Sequence[int]) -> dict[str, float]:
    ms = sorted(x / 1e6 for x in ns)
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": ms[-1],
    }


def time_custodes_proofs(
    path: Path, size: int, count: int, warmup: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    with Ledger.open(path) as led:
        assert led.size() == size
        for _ in range(warmup):
            led.prove(rng.randrange(size))
        indices = [rng.randrange(size) for _ in range(count)]
        samples: list[int] = []
        proofs = []
        clock = time.perf_counter_ns
        gc.collect()
        gc.disable()
        try:
            for index in indices:
                start = clock()
                proof = led.prove(index)
                samples.append(clock() - start)
                proofs.append(proof)
        finally:
            gc.enable()
        root = led.root()
        # Every proof checked: RFC 9162 verification against the current root, and a sample of
        # leaf hashes against the stored entries.
        verified = sum(
            1
            for index, proof in zip(indices, proofs, strict=True)
            if proof.verify() and proof.root == root and proof.index == index and proof.size == size
        )
        for index, proof in list(zip(indices, proofs, strict=True))[:: max(1, count // 100)]:
            assert led.entry(index).leaf_hash == proof.leaf_hash, f"leaf hash of {index} differs"
        tampered = proofs[0]
        bad_hashes = (bytes(32), *tampered.hashes[1:]) if tampered.hashes else ()
        forged = type(tampered)(
            tampered.index, tampered.size, tampered.leaf_hash, bad_hashes, tampered.root
        )
        assert not tampered.hashes or not forged.verify(), "a forged proof verified"
    stats = latency_stats(samples)
    stats.update(
        {
            "implementation": "custodes",
            "size": size,
            "verified": verified,
            "path_length": statistics.fmean(len(p.hashes) for p in proofs),
        }
    )
    return stats


def time_pymerkle_proofs(path: Path, count: int, warmup: int, seed: int) -> dict[str, Any]:
    from pymerkle import InvalidProof, SqliteTree, verify_inclusion

    rng = random.Random(seed)
    tree = SqliteTree(str(path))  # a fresh object: its subroot cache starts empty
    try:
        size = tree.get_size()
        for _ in range(warmup):
            tree.prove_inclusion(rng.randrange(size) + 1)
        indices = [rng.randrange(size) + 1 for _ in range(count)]  # pymerkle counts from 1
        samples: list[int] = []
        proofs = []
        clock = time.perf_counter_ns
        gc.collect()
        for index in indices:
            start = clock()
            proof = tree.prove_inclusion(index)
            samples.append(clock() - start)
            proofs.append(proof)
        root = tree.get_root()
        verified = 0
        for index, proof in zip(indices, proofs, strict=True):
            try:
                verify_inclusion(tree.get_leaf(index), root, proof)
            except InvalidProof:
                continue
            verified += 1
        cache = tree.get_cache_info()
    finally:
        tree.close()
    stats = latency_stats(samples)
    stats.update(
        {
            "implementation": "pymerkle",
            "size": size,
            "verified": verified,
            "cache_bytes": cache.size,
            "cache_hits": cache.hits,
            "cache_misses": cache.misses,
        }
    )
    return stats


def bench_proofs(args: argparse.Namespace, appended: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"builds": [], "latency": [], "skipped": []}
    if appended is not None:
        # Same tree size for both: the ledgers written by the append benchmark.
        n = appended["entries"]
        note(f"proofs: custodes at {n:,} entries")
        result["latency"].append(
            time_custodes_proofs(
                Path(appended["custodes_db"]), n, args.proofs, args.warmup, args.seed
            )
        )
        if appended.get("pymerkle_db"):
            note(f"proofs: pymerkle at {n:,} entries ({args.pymerkle_proofs} proofs)")
            result["latency"].append(
                time_pymerkle_proofs(
                    Path(appended["pymerkle_db"]),
                    args.pymerkle_proofs,
                    args.pymerkle_warmup,
                    args.seed,
                )
            )
    for size in args.proof_sizes:
        try:
            info = ensure_ledger(size, args)
        except BuildTooSlow as exc:
            note(f"proofs: {exc}")
            result["skipped"].append({"size": size, "reason": str(exc)})
            continue
        path, _ = _ledger_path(size)
        info["page_cache_warm_s"] = round(warm_page_cache(path), 2)
        result["builds"].append(info)
        note(f"proofs: custodes at {size:,} entries ({args.proofs:,} proofs)")
        result["latency"].append(
            time_custodes_proofs(path, size, args.proofs, args.warmup, args.seed + size)
        )
    return result


def print_proofs(res: dict[str, Any]) -> None:
    section("2. Inclusion proofs")
    if res["builds"]:
        rows = [
            [
                fmt_int(b["size"]),
                f"{b['build_s']:,.1f}",
                fmt_int(b["build_entries_per_s"]),
                fmt_int(b["append_many_entries_per_s"]),
                _maybe_int(b.get("first_tenth_entries_per_s")),
                _maybe_int(b.get("last_tenth_entries_per_s")),
                fmt_bytes(b["db_bytes"]),
                f"{b['db_bytes'] / b['size']:.0f}",
                ("cached " + str(b.get("built_at", "")) if b.get("cached") else "this run")
                + _short_revision(b.get("built_from")),
            ]
            for b in res["builds"]
        ]
        print(
            table(
                [
                    "ledger size",
                    "build s",
                    "entries/s",
                    "in append_many/s",
                    "first 10%/s",
                    "last 10%/s",
                    "db on disk",
                    "B/entry",
                    "built",
                ],
                rows,
            )
        )
        print(
            "(built with append_many in batches; entry generation counted in build s, not in "
            "the append_many rate;\nfirst/last 10%: append_many rate over the first and last "
            "tenth of the batches)\n"
        )
    rows = [
        [
            r["implementation"],
            fmt_int(r["size"]),
            fmt_int(r["count"]),
            f"{r['p50_ms']:.3f}",
            f"{r['p90_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
            f"{r['mean_ms']:.3f}",
            f"{r['max_ms']:.3f}",
            f"{r['verified']}/{r['count']}",
        ]
        for r in res["latency"]
    ]
    print(
        table(
            [
                "proof by",
                "tree size",
                "proofs",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "mean ms",
                "max ms",
                "verified",
            ],
            rows,
        )
    )
    print(
        "custodes: Ledger.prove(random index) on one open ledger after a warm-up, database in the "
        "OS page cache;\npymerkle: prove_inclusion on a fresh SqliteTree (it rehashes leaf ranges "
        "from the table, memoising big subroots as it goes)."
    )
    for skipped in res["skipped"]:
        print(f"skipped {skipped['size']:,}: {skipped['reason']}")


# -- 3. concurrent durable writers --------------------------------------------------------


def writer_entry(writer: int, i: int) -> dict[str, Any]:
    entry = make_entry(writer * 10_000_000 + i)
    entry["writer"] = writer
    return entry


def custodes_exe() -> Path:
    exe = Path(sys.executable).with_name("custodes")
    if not exe.exists():
        found = shutil.which("custodes")
        if found is None:
            raise SystemExit("the custodes console script is not installed beside this Python")
        exe = Path(found)
    return exe


def verify_ledger_cli(db: Path, expected: int) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(custodes_exe()), "ledger", "verify", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    size = None
    if proc.returncode == 0:
        size = json.loads(proc.stdout)["size"]
    return {
        "exit": proc.returncode,
        "size": size,
        "expected": expected,
        "ok": proc.returncode == 0 and size == expected,
        "seconds": round(took, 2),
        "stderr": proc.stderr.strip()[-500:],
    }


def bench_cli_writers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """N `custodes ledger append` processes, each fed its lines by a thread, acks read back.

    Each writer first sends one line and waits for its ack, so all processes are started and
    hold an open ledger; then all send the rest at once. Reported: total acks / wall time from
    spawning the processes, and the steady rate from that start line to the last ack.
    """
    writers, per = args.writers, args.writer_entries
    db = tmp / "writers-cli.db"
    remove_db(db)
    Ledger.create(db, name=ORIGIN).close()
    payloads = [
        [(json.dumps(writer_entry(w, i)) + "\n").encode() for i in range(per)]
        for w in range(writers)
    ]
    exe = str(custodes_exe())
    first_ack = [threading.Event() for _ in range(writers)]
    go: list[float] = []
    barrier = threading.Barrier(writers, action=lambda: go.append(time.monotonic()))
    acks: list[list[bytes]] = [[] for _ in range(writers)]
    last_ack = [0.0] * writers
    errors: list[str] = []
    stderr_text = [""] * writers

    t_spawn = time.monotonic()
    procs = [
        subprocess.Popen(
            [exe, "ledger", "append", "--db", str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(writers)
    ]

    def feed(w: int) -> None:
        stdin = procs[w].stdin
        assert stdin is not None
        try:
            stdin.write(payloads[w][0])
            stdin.flush()
            if not first_ack[w].wait(120):
                raise TimeoutError(f"writer {w}: no ack for its first line")
            barrier.wait(120)
            stdin.write(b"".join(payloads[w][1:]))  # blocks until the pipe has taken it all
        except (OSError, threading.BrokenBarrierError, TimeoutError) as exc:
            errors.append(f"writer {w}: {exc!r}")
            barrier.abort()
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def drain(w: int) -> None:
        stdout = procs[w].stdout
        assert stdout is not None
        got = acks[w]
        for line in stdout:
            got.append(line)
            last_ack[w] = time.monotonic()
            if len(got) == 1:
                first_ack[w].set()
        first_ack[w].set()  # EOF: never leave the feeder waiting

    def drain_err(w: int) -> None:
        stderr = procs[w].stderr
        assert stderr is not None
        stderr_text[w] = stderr.read().decode(errors="replace")

    threads = [
        threading.Thread(target=fn, args=(w,), daemon=True)
        for w in range(writers)
        for fn in (feed, drain, drain_err)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = [p.wait() for p in procs]
    t_end = max(last_ack)

    total = sum(len(a) for a in acks)
    indices = [json.loads(line)["index"] for got in acks for line in got]
    expected = writers * per
    ok_acks = len(indices) == expected and sorted(indices) == list(range(expected))
    for w, code in enumerate(codes):
        if code != 0:
            errors.append(f"writer {w} exited {code}: {stderr_text[w].strip()[-300:]}")
    ran = bool(go) and total > writers and t_end > go[0]
    steady_s = t_end - go[0] if ran else None
    result = {
        "writers": writers,
        "entries_per_writer": per,
        "acked": total,
        "acks_unique_and_contiguous": ok_acks,
        "wall_s": round(t_end - t_spawn, 3) if total else None,
        "durable_per_s": total / (t_end - t_spawn) if total else 0.0,
        "steady_s": round(steady_s, 3) if steady_s else None,
        "steady_durable_per_s": (total - writers) / steady_s if steady_s else None,
        "errors": errors,
        "db_bytes": db_bytes(db),
    }
    note("writers: verifying the CLI ledger")
    result["verify"] = verify_ledger_cli(db, expected)
    return result


def _api_worker(
    db: str,
    writer: int,
    per: int,
    threads: int,
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    try:
        led = Ledger.open(db)
        led.signer()
        entries = [writer_entry(writer, i) for i in range(per)]
        shares = [entries[t::threads] for t in range(threads)]
        indices: list[list[int]] = [[] for _ in range(threads)]
        failures: list[str] = []

        def run(t: int) -> None:
            try:
                out = indices[t]
                for entry in shares[t]:
                    out.append(led.append(entry).index)
            except Exception as exc:
                failures.append(repr(exc))

        pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        ready.put(writer)
        start.wait()
        t0 = time.monotonic()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        t1 = time.monotonic()
        led.close()
        results.put((writer, t0, t1, [i for part in indices for i in part], failures))
    except Exception as exc:
        results.put((writer, 0.0, 0.0, [], [repr(exc)]))


def bench_api_writers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """N processes x T threads, each thread calling Ledger.append() one entry at a time."""
    writers, per, threads = args.writers, args.writer_entries, args.threads
    db = tmp / "writers-api.db"
    remove_db(db)
    Ledger.create(db, name=ORIGIN).close()
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    start = ctx.Event()
    procs = [
        ctx.Process(
            target=_api_worker, args=(str(db), w, per, threads, ready, start, results), daemon=True
        )
        for w in range(writers)
    ]
    for proc in procs:
        proc.start()
    for _ in range(writers):
        ready.get(timeout=300)
    t_go = time.monotonic()
    start.set()
    got = [results.get(timeout=3600) for _ in range(writers)]
    for proc in procs:
        proc.join(60)
    t_end = max(r[2] for r in got)
    indices = sorted(i for r in got for i in r[3])
    expected = writers * per
    errors = [f"writer {r[0]}: {e}" for r in got for e in r[4]]
    result = {
        "writers": writers,
        "threads_per_writer": threads,
        "entries_per_writer": per,
        "acked": len(indices),
        "acks_unique_and_contiguous": indices == list(range(expected)),
        "wall_s": round(t_end - t_go, 3),
        "durable_per_s": len(indices) / (t_end - t_go),
        "errors": errors,
        "db_bytes": db_bytes(db),
    }
    note("writers: verifying the API ledger")
    result["verify"] = verify_ledger_cli(db, expected)
    return result


def bench_writers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    note(f"writers: {args.writers} x `custodes ledger append`, {args.writer_entries:,} lines each")
    cli = bench_cli_writers(args, tmp)
    note(
        f"writers: {args.writers} processes x {args.threads} threads of Ledger.append(), "
        f"{args.writer_entries:,} entries per process"
    )
    api = bench_api_writers(args, tmp)
    return {"cli": cli, "api": api}


def print_writers(res: dict[str, Any]) -> None:
    section("3. Durable appends from concurrent writers (one SQLite ledger)")
    cli, api = res["cli"], res["api"]
    rows = [
        [
            f"{cli['writers']} x `custodes ledger append` (pipes)",
            fmt_int(cli["acked"]),
            "-" if cli["wall_s"] is None else f"{cli['wall_s']:.2f}",
            fmt_int(cli["durable_per_s"]),
            _maybe_int(cli["steady_durable_per_s"]),
            _verdict(cli),
        ],
        [
            f"{api['writers']} procs x {api['threads_per_writer']} threads Ledger.append()",
            fmt_int(api["acked"]),
            f"{api['wall_s']:.2f}",
            fmt_int(api["durable_per_s"]),
            "-",
            _verdict(api),
        ],
    ]
    print(table(["writers", "acked", "wall s", "durable/s", "steady/s", "check"], rows))
    print(
        "durable/s: acknowledged entries / wall time (CLI: from spawning the processes, start-up "
        "included);\nsteady/s: CLI rate from the moment every process had acked its first line. "
        "check: acks are\nexactly indices 0..N-1 and `custodes ledger verify` exits 0 with N "
        "entries."
    )
    for name, part in (("cli", cli), ("api", api)):
        for error in part["errors"]:
            print(f"{name}: error: {error}")
        if not part["verify"]["ok"]:
            print(f"{name}: verify: {part['verify']}")


def _verdict(part: dict[str, Any]) -> str:
    v = part["verify"]
    ok = part["acks_unique_and_contiguous"] and v["ok"] and not part["errors"]
    return f"ok ({v['size']:,})" if ok else f"FAILED (exit {v['exit']}, size {v['size']})"


# -- targets and main ---------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    append = results.get("append")
    if append is not None:
        ratio = append.get("ratio_custodes_vs_pymerkle")
        out.append(
            {
                "target": f"batch append >= {TARGET_APPEND_VS_PYMERKLE:.0f}x pymerkle",
                "measured": None if ratio is None else f"{ratio:.2f}x",
                "met": None if ratio is None else ratio >= TARGET_APPEND_VS_PYMERKLE,
            }
        )
    proofs = results.get("proofs")
    if proofs is not None:
        at = [
            r
            for r in proofs["latency"]
            if r["implementation"] == "custodes" and r["size"] == TARGET_PROOF_SIZE
        ]
        out.append(
            {
                "target": f"proof p99 < {TARGET_PROOF_P99_MS:g} ms at {TARGET_PROOF_SIZE:,}",
                "measured": f"{at[0]['p99_ms']:.3f} ms" if at else None,
                "met": (at[0]["p99_ms"] < TARGET_PROOF_P99_MS) if at else None,
            }
        )
    writers = results.get("writers")
    if writers is not None:
        cli = writers["cli"]
        valid = _verdict(cli).startswith("ok")
        out.append(
            {
                "target": f">= {TARGET_DURABLE_PER_S:,.0f} durable appends/s, "
                f"{cli['writers']} concurrent writers",
                "measured": f"{cli['durable_per_s']:,.0f}/s (CLI)",
                "met": valid and cli["durable_per_s"] >= TARGET_DURABLE_PER_S,
            }
        )
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    section("Targets")
    cells = []
    for row in rows:
        verdict = "not measured" if row["met"] is None else ("MET" if row["met"] else "MISSED")
        cells.append([row["target"], row["measured"] or "-", verdict])
    print(table(["target", "measured", "verdict"], cells))


def print_machine(info: dict[str, Any]) -> None:
    section("Machine")
    print(f"CPU      {info['cpu']} ({info['cores']} cores), {info['memory_gib']} GiB RAM")
    print(f"Python   {info['python']}   SQLite {info['sqlite']}   {info['platform']}")
    print(f"custodes {info['custodes']}   pymerkle {info['pymerkle'] or 'not installed'}")
    print(f"fsync    {info['fsync_ms_median']:.3f} ms (median of 100, 4 KiB, benchmarks/.work)")
    print(f"date     {info['date']}")
    print(f"source   custodes at {info['source']}")
    busy = info["other_cores_busy_at_start"]
    print(f"idle     other programs kept {busy:.2f} cores busy in the second before the start")
    if busy >= 0.1:
        print("WARNING: the machine is not idle; the figures will be low and noisy.")


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke run: append-n 20,000, proof sizes 100,000, "
        "writers 4 x 2,000, one round",
    )
    parser.add_argument(
        "--append-n", type=int, default=200_000, help="entries in the append benchmark"
    )
    parser.add_argument(
        "--batch", type=int, default=10_000, help="entries per append_many / append_entries call"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="append rounds (the median is reported)"
    )
    parser.add_argument(
        "--proof-sizes",
        type=_sizes,
        default=[1_000_000, 10_000_000],
        help="comma-separated ledger sizes to prove against",
    )
    parser.add_argument("--proofs", type=int, default=5000, help="timed proofs per ledger")
    parser.add_argument("--warmup", type=int, default=200, help="untimed proofs first")
    parser.add_argument("--pymerkle-proofs", type=int, default=200, help="timed pymerkle proofs")
    parser.add_argument(
        "--pymerkle-warmup", type=int, default=20, help="untimed pymerkle proofs first"
    )
    parser.add_argument(
        "--build-batch",
        type=int,
        default=100_000,
        help="append_many batch when building proof ledgers",
    )
    parser.add_argument(
        "--build-budget",
        type=float,
        default=1800.0,
        help="give up building a proof ledger projected to take longer (seconds)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached proof ledgers")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer processes")
    parser.add_argument("--writer-entries", type=int, default=25_000, help="entries per writer")
    parser.add_argument(
        "--threads", type=int, default=16, help="threads per process in the API reference run"
    )
    parser.add_argument(
        "--only",
        default="append,proofs,writers",
        help="comma-separated parts to run: append, proofs, writers",
    )
    parser.add_argument("--seed", type=int, default=20261125, help="random seed for proof indices")
    parser.add_argument(
        "--json", dest="json_file", metavar="FILE", help="also write the results as JSON"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.append_n, args.proof_sizes, args.writer_entries = 20_000, [100_000], 2_000
        args.repeat = 1
    args.parts = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = args.parts - {"append", "proofs", "writers"}
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    if args.append_n < 1 or args.batch < 1 or args.writers < 1 or args.writer_entries < 2:
        parser.error("sizes must be positive (and --writer-entries at least 2)")
    return args


def _json_default(value: object) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep the report in step with progress
    WORK.mkdir(exist_ok=True)
    tmp = WORK / f"run-{os.getpid()}"
    tmp.mkdir()
    results: dict[str, Any] = {
        "machine": machine_info(WORK),
        "args": {k: v for k, v in vars(args).items() if k not in {"parts"}},
    }
    print("custodes ledger benchmark" + (" (--quick)" if args.quick else ""))
    print_machine(results["machine"])
    started, busy0, own0 = time.perf_counter(), cpu_busy_s(), own_cpu_s()
    try:
        if "append" in args.parts:
            results["append"] = bench_append(args, tmp)
            print_append(results["append"])
        if "proofs" in args.parts:
            results["proofs"] = bench_proofs(args, results.get("append"))
            print_proofs(results["proofs"])
        if "writers" in args.parts:
            results["writers"] = bench_writers(args, tmp)
            print_writers(results["writers"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["targets"] = targets(results)
    print_targets(results["targets"])
    wall = time.perf_counter() - started
    other = max(0.0, (cpu_busy_s() - busy0) - (own_cpu_s() - own0))
    results["total_s"] = round(wall, 1)
    results["other_cpu_s_during_run"] = round(other, 1)
    print(
        f"\ntotal {wall:.1f} s; CPU used outside this benchmark's processes meanwhile "
        f"(other programs, kernel threads): {other:.1f} s = {other / wall:.2f} cores on average"
    )
    if other / wall >= 0.1:
        print("WARNING: the machine was not idle during the run; the figures are low and noisy.")
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
        print(f"results written to {args.json_file}")
    failed = False
    if "writers" in results:
        failed = any(not _verdict(results["writers"][k]).startswith("ok") for k in ("cli", "api"))
    if "proofs" in results:
        failed = failed or any(r["verified"] != r["count"] for r in results["proofs"]["latency"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
