"""Chaos soak: random faults and changes on a lab under load, and what they cost.

    python -m bench.chaos [--seconds 300] [--seed N] [--nodes 8] [--write]

An 8-node lab under continuous `ab`, a fault or change every few seconds (a
daemon killed, an underlay cut, update --force, scale, drain): see
netagent/lab/chaos.py for the faults and what is checked. Prints the table (and
with --write puts it in docs/benchmarks.md); exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.convergence import write_section
from netagent.lab.chaos import CLIENT_TIMEOUT, CONCURRENCY, KINDS, PERIOD, Outcome, soak

BENCH_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def table(o: Outcome) -> str:
    kinds = Counter(f.kind for f in o.faults)
    c = o.ab.counts
    done = ", ".join(f"{kinds[k]} {k}" for k in KINDS)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: "
        f"{o.nodes}-node lab (manager1, {o.nodes - 1} workers), `web` = slowreply × 6 "
        "published on 8080, `api` = whoami × 4, `cache` = whoami × 3 on one overlay; "
        f"`ab -r -c {CONCURRENCY}` from the lab client to the mesh on manager1 for the "
        f"whole soak ({o.seconds:g} s, seed {o.seed}), a client timeout of "
        f"{CLIENT_TIMEOUT:g} s; a fault every {PERIOD:g} s or so: {done}.",
        "",
        "| measure | result | goal |",
        "| --- | --- | --- |",
        f"| faults and changes injected | {len(o.faults)} ({done}) | |",
        f"| requests completed | {o.ab.complete} | |",
        f"| ab's failures by cause (connect, receive, exceptions, non-2xx) | "
        f"{c['connect']}, {c['receive']}, {c['exceptions']}, {o.ab.non_2xx} | |",
        f"| client timeouts (reset after {CLIENT_TIMEOUT:g} s) | {o.ab.timed_out}, "
        f"{len(o.ab.timed_out_ports & o.sent_to_cut_nodes)} of them sent to a cut node | |",
        f"| failed: sent to a cut node (in flight at the cut, or balanced to it until the "
        f"mesh dropped it) | {o.excused} | allowed |",
        f"| failed: anything else (planned changes, kills, the rest) | {o.unexplained} | 0 "
        f"({'met' if o.unexplained == 0 else 'not met'}) |",
        f"| every service converged after the soak | in {o.converged_s:.1f} s | yes |",
        f"| `vxswarm verify` differences | {len(o.verify_failures)} | 0 "
        f"({'met' if not o.verify_failures else 'not met'}) |",
        f"| left after `lab down` (namespaces, processes) | {len(o.left_behind)} | 0 "
        f"({'met' if not o.left_behind else 'not met'}) |",
    ]
    if o.stray_resets:
        lines += ["", "Client timeouts no cut explains (seconds into the soak, backend): "
                  + ", ".join(f"{t:.1f} s {b}" for t, b in o.stray_resets) + "."]  # fmt: skip
    if o.verify_failures or o.left_behind:
        lines += ["", *(f"- {x}" for x in o.verify_failures + o.left_behind)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(2), "big"))
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--write", action="store_true", help="write the table to docs/benchmarks.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vxchaos-") as tmp:
        print(f"chaos soak: {args.seconds:g} s, seed {args.seed}, {args.nodes} nodes", flush=True)
        outcome = soak(Path(tmp), seconds=args.seconds, seed=args.seed, nodes=args.nodes)
    text = table(outcome)
    print(text)
    if args.write:
        write_section(BENCH_MD, "Chaos soak", text)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
