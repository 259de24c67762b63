#!/usr/bin/python3
"""bench/report.py — turn bench/run's raw results (hyperfine JSON, memory.tsv,
syscalls.tsv, meta.env) into docs/benchmarks.md and a PNG of start latency.

    bench/report.py --results bench/results --md docs/benchmarks.md \
                    --png docs/bench-start-latency.png

All ratios are to the floor (`unshare -Urm /bin/true`) measured in the same
run. Times are medians over all runs (all rounds pooled). bench/analysis.md,
if present, is appended verbatim: the hand-written explanation of the
numbers, kept apart so that regenerating the tables does not lose it.
"""
import argparse
import glob
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

START_ROWS = [
    ("true", "`/bin/true` (no container at all)"),
    ("floor", "`unshare -Urm /bin/true` — **the floor**"),
    ("floor-ns", "`unshare -Urmipuf /bin/true` (the rootless spec's 5 namespaces)"),
    ("husk-minimal", "`husk run`, minimal spec (rootfs + /proc, no PID ns)"),
    ("husk", "`husk run`, runc's rootless spec"),
    ("crun", "`crun run`, same rootless spec"),
    ("runc", "`runc run`, same rootless spec"),
    ("bwrap", "`bwrap --unshare-all --bind rootfs / --proc /proc --dev /dev /bin/true`"),
]

SCAN_ROWS = [
    "state",
    "kill --all (own PID ns)",
    "delete --force (own PID ns)",
    "kill --all (no PID ns)",
    "delete --force (no PID ns)",
    "kill --all (no PID ns, the others started after it)",
    "ls -f /proc (reference)",
]


def load_meta(d):
    meta = {}
    path = os.path.join(d, "meta.env")
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


def load_hf(paths):
    """name -> list of run times (s), pooled over the given hyperfine files."""
    times = {}
    for p in paths:
        if not os.path.exists(p):
            continue
        try:
            with open(p) as f:
                data = json.load(f)
        except ValueError:
            continue  # hyperfine failed and left an empty file
        for r in data.get("results", []):
            times.setdefault(r["command"], []).extend(r.get("times") or [r["median"]])
    return times


def q(ts, frac):
    s = sorted(ts)
    i = (len(s) - 1) * frac
    lo, hi = int(i), min(int(i) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (i - lo)


def med(ts):
    return statistics.median(ts) if ts else None


def ms(x, digits=2):
    return "—" if x is None else f"{x * 1e3:.{digits}f}"


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def tsv(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                rows.append(parts)
    return rows


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def plot(start, png):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing, no plot", file=sys.stderr)
        return False
    rows = [(k, d) for k, d in START_ROWS if start.get(k)]
    rows.sort(key=lambda r: med(start[r[0]]))
    labels = [k for k, _ in rows]
    meds = [med(start[k]) * 1e3 for k in labels]
    lo = [m - q(start[k], 0.25) * 1e3 for k, m in zip(labels, meds)]
    hi = [q(start[k], 0.75) * 1e3 - m for k, m in zip(labels, meds)]
    colors = ["#d62728" if k.startswith("husk") else "#7f7f7f" if k in ("floor", "floor-ns", "true") else "#1f77b4" for k in labels]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.6))
    ax.barh(labels, meds, xerr=[lo, hi], color=colors, capsize=3)
    fl = med(start["floor"]) * 1e3 if start.get("floor") else None
    for y, (m, h) in enumerate(zip(meds, hi)):
        txt = f"  {m:.2f} ms" + (f" ({m / fl:.1f}× floor)" if fl else "")
        ax.text(m + h, y, txt, va="center", fontsize=9)
    if start.get("floor"):
        ax.axvline(med(start["floor"]) * 1e3, color="k", ls="--", lw=0.8, label="floor (unshare -Urm)")
        ax.legend(loc="lower right")
    ax.set_xlabel("start-to-exit latency of a /bin/true container, median ms (bars: 25–75 %)")
    ax.set_title("Container start latency, unprivileged user (lower is better)")
    ax.set_xlim(0, max(m + h for m, h in zip(meds, hi)) * 1.35)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--md", default=os.path.join(HERE, "..", "docs", "benchmarks.md"))
    ap.add_argument("--png", default=os.path.join(HERE, "..", "docs", "bench-start-latency.png"))
    a = ap.parse_args()
    d = a.results
    meta = load_meta(d)
    start_files = sorted(glob.glob(os.path.join(d, "start-*.json")))
    start = load_hf(start_files)
    lc = load_hf(sorted(glob.glob(os.path.join(d, "lifecycle*.json"))))
    conc = load_hf([os.path.join(d, "concurrent.json")])
    n = meta.get("SLEEPERS", "10000")
    scan0 = load_hf([os.path.join(d, "scan-0.json")])
    scann = load_hf([os.path.join(d, f"scan-{n}.json")])
    floor = med(start.get("floor", []))

    # per-round ratios show how stable the comparison is
    round_ratios = {}
    for p in start_files:
        t = load_hf([p])
        f = med(t.get("floor", []))
        for k in t:
            if f:
                round_ratios.setdefault(k, []).append(med(t[k]) / f)

    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Generated by `bench/run` (as root; it measures as an unprivileged user) with "
      "`bench/report.py` — do not edit by hand; the analysis at the end comes from "
      "`bench/analysis.md`. Raw hyperfine JSON: `bench/results/`.")
    w("")
    w("## Setup")
    w("")
    w(f"- Mode: {meta.get('MODE', '?')}, {meta.get('DATE', '?')}, husk {meta.get('HUSK_REV', '?')}")
    w(f"- Machine: {meta.get('CPUS', '?')} CPUs ({meta.get('CPU_MODEL', '?')}), {meta.get('MEM', '?')}, "
      f"kernel {meta.get('KERNEL', '?')}")
    w(f"- Peers: {meta.get('RUNC', '?')}; {meta.get('CRUN', '?')}; {meta.get('BWRAP', '?')}; {meta.get('HYPERFINE', '?')}")
    w(f"- All commands run as the unprivileged user `{meta.get('BENCH_USER', '?')}` (no capabilities, "
      "a one-ID user namespace: runc's rootless spec maps only the caller's UID). The rootfs is the "
      "busybox bundle of `tools/mkbundle`, owned by that user; every container runs `/bin/true` "
      "(busybox), the floors run the host's `/bin/true`.")
    if meta.get("CGROUP_NOTE"):
        w(f"- Mount namespace: {meta['CGROUP_NOTE']}.")
    loads = [(k[5:], v) for k, v in meta.items() if k.startswith("LOAD_")]
    if loads:
        w("- Load average (1/5/15 min) when each part began: " + "; ".join(f"{k} {v}" for k, v in loads) + ".")
    w("- **This is a shared 2-core machine**: other test suites may run during the bench, so "
      "absolute times are noisy. Every comparison is measured in the same run and quoted as a "
      "ratio to the floor (or to runc) measured in that run. hyperfine runs one command's runs "
      "back to back, so a load change would favour whichever command ran during the quiet "
      f"spell: start latency is therefore measured in {meta.get('ROUNDS', '?')} short rounds of "
      f"{meta.get('RUNS', '?')} runs per command (after {meta.get('WARMUP', '?')} warm-up runs), "
      "the medians pool all rounds, and the spread of the per-round ratios is shown.")
    skipped = [(k[8:], v) for k, v in meta.items() if k.startswith("SKIPPED_")]
    for k, v in skipped:
        w(f"- **Skipped `{k}`**: it could not run on this machine: `{v.strip()}`")
    failed = [k[7:] for k in meta if k.startswith("FAILED_")]
    for k in failed:
        who = meta[f"FAILED_{k}"]
        who = f": `{who}` exited non-zero" if who not in ("1", "?") else ""
        w(f"- **hyperfine failed for `{k}`**{who}; the round's numbers are missing below.")
    w("")

    # ---- targets
    husk_r = med(start.get("husk", []))
    husk_m = med(start.get("husk-minimal", []))
    lc_h, lc_r = med(lc.get("husk", [])), med(lc.get("runc", []))
    tg = []

    def target(name, measured, ok):
        tg.append(f"| {name} | {measured} | {verdict(ok)} |")

    # The verdict uses the median of the per-round ratios (each round compares
    # commands measured within seconds of each other, so a load change between
    # rounds cancels out); the pooled-median ratio is shown beside it.
    lc_rounds = {}
    for p in sorted(glob.glob(os.path.join(d, "lifecycle*.json"))):
        t = load_hf([p])
        if t.get("husk") and t.get("runc"):
            lc_rounds.setdefault("husk", []).append(med(t["husk"]) / med(t["runc"]))

    def robust(k, rounds, a, b):
        rl = rounds.get(k, [])
        if rl:
            return statistics.median(rl)
        return a / b if a and b else None

    def show(rob, a, b, n_rounds):
        if rob is None:
            return "—"
        extra = f" (pooled medians: {a / b:.2f}×)" if a and b and n_rounds > 1 else ""
        return f"{rob:.2f}×{extra}"

    rr_h = robust("husk", round_ratios, husk_r, floor)
    rr_m = robust("husk-minimal", round_ratios, husk_m, floor)
    rr_l = robust("husk", lc_rounds, lc_h, lc_r)
    target("`husk run`, runc's rootless spec ≤ 2.0× the floor",
           show(rr_h, husk_r, floor, len(round_ratios.get("husk", []))), None if rr_h is None else rr_h <= 2.0)
    target("`husk run`, minimal spec ≤ 1.3× the floor",
           show(rr_m, husk_m, floor, len(round_ratios.get("husk-minimal", []))), None if rr_m is None else rr_m <= 1.3)
    target("Buildah lifecycle ≤ 0.3× runc's",
           show(rr_l, lc_h, lc_r, len(lc_rounds.get("husk", []))), None if rr_l is None else rr_l <= 0.3)
    for name in ("kill --all (own PID ns)", "delete --force (own PID ns)",
                 "kill --all (no PID ns)", "delete --force (no PID ns)"):
        m = med(scann.get(name, []))
        target(f"`{name}` ≤ 25 ms with {n} host processes", f"{ms(m)} ms", None if m is None else m <= 0.025)
    for name in ("kill --all (own PID ns)", "delete --force (own PID ns)"):
        m0, m1 = med(scan0.get(name, [])), med(scann.get(name, []))
        ok = None if m0 is None or m1 is None else (m1 - m0) <= max(0.002, 0.25 * m0)
        target(f"`{name}` grows with the container, not the host",
               f"{ms(m0)} → {ms(m1)} ms (0 → {n} processes)", ok)
    m0, m1 = med(scan0.get("state", [])), med(scann.get("state", []))
    sc = {r[0]: r for r in tsv(os.path.join(d, "syscalls.tsv"))}
    g = sc.get(f"state/{n}", [None, None])[1]
    ok = None if m0 is None or m1 is None else ((m1 - m0) <= max(0.002, 0.25 * m0) and g in (None, "0"))
    target("`state` never scans", f"{ms(m0)} → {ms(m1)} ms; getdents64 calls: {g if g is not None else '?'}", ok)
    w("## Targets (issue 5)")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    out.extend(tg)
    w("")
    w("Ratios for the first three targets are the median of the per-round ratios (each round "
      "measures the commands within seconds of each other, so load changes between rounds cancel "
      "out); the ratio of the pooled medians is in parentheses.")
    w("")
    w(f"\"Grows with the container\" is taken as met when {n} extra host processes add at most "
      "2 ms or 25 % to the median; \"never scans\" also needs zero `getdents64` calls.")
    w("")

    # ---- start latency
    w("## Start latency")
    w("")
    w("Start to exit of a container running `/bin/true` (hyperfine, no shell). "
      "Ratios are median / median of the floor.")
    w("")
    w("| command | median ms | 25–75 % ms | min ms | × floor | × floor, median of rounds (range) |")
    w("|---|---:|---:|---:|---:|---:|")
    for k, desc in START_ROWS:
        ts = start.get(k)
        if not ts:
            if k in dict(skipped) or f"{k}" in dict(skipped):
                w(f"| {desc} | skipped | | | | |")
            continue
        rl = sorted(round_ratios.get(k, []))
        rr = "" if not rl else (f"{rl[0]:.2f}" if len(rl) == 1 else
                                f"{statistics.median(rl):.2f} ({rl[0]:.2f}–{rl[-1]:.2f})")
        w(f"| {desc} | {ms(med(ts))} | {ms(q(ts, .25))}–{ms(q(ts, .75))} | {ms(min(ts))} | "
          f"{ratio(med(ts), floor)} | {rr} |")
    w("")
    w("![start latency per runtime](bench-start-latency.png)")
    w("")
    w("runc's rootless spec asks for PID, IPC, UTS, mount and user namespaces, so `husk run` "
      "on it cannot `execve` in place: it creates, starts, waits for and deletes the container "
      "(one waiter process). The minimal spec has no PID namespace, so `husk run` becomes "
      "`/bin/true` itself.")
    w("")

    # ---- lifecycle
    w("## Buildah lifecycle")
    w("")
    w("`create --pid-file`, `start`, `state` (polled until `stopped`, as Buildah polls it), "
      "`delete`, driven by a small bash script (`bench/helper lifecycle`, same for every runtime; "
      f"the bash start-up, about 1–2 ms, is in every row); {meta.get('LC_ROUNDS', '1')} rounds of "
      f"{meta.get('LC_RUNS', '?')} runs per runtime, pooled.")
    w("")
    w("| runtime | median ms | 25–75 % ms | × runc |")
    w("|---|---:|---:|---:|")
    for k in ("husk", "runc", "crun"):
        ts = lc.get(k)
        if ts:
            w(f"| {k} | {ms(med(ts))} | {ms(q(ts, .25))}–{ms(q(ts, .75))} | {ratio(med(ts), lc_r)} |")
    w("")

    # ---- scan
    w(f"## The namespace scan: `state`, `kill --all`, `delete --force` with {n} other processes")
    w("")
    w(f"{meta.get('SLEEPERS_STARTED', n)} `sleep` processes owned by the bench user (the worst case: "
      "their `/proc/PID/ns` links are readable, so a naive scan must look at each; they are "
      "started before the containers, as the machine's other processes would be) "
      f"({meta.get('PROCS_DURING_SCAN', '?')} processes on the host in all). Each `kill`/`delete` "
      "run gets a fresh running container (hyperfine `--prepare`). \"Own PID ns\": runc's "
      "rootless spec running `sleep`; \"no PID ns\": the minimal spec running `sleep`, whose "
      "processes can only be found in the host's `/proc` — husk reads only the window of PIDs "
      "handed out since the container process (`src/scan.rs`, docs/stateless-profile.md). "
      "The worst case for that window is the row \"the others started after it\": one "
      "container (no PID ns) made *before* the sleep processes, signalled with `CONT`, so all "
      "of them lie in its window and each is looked at.")
    w("")
    w(f"| command | median ms, 0 others | median ms, {n} others | growth |")
    w("|---|---:|---:|---:|")
    for k in SCAN_ROWS:
        a0, a1 = med(scan0.get(k, [])), med(scann.get(k, []))
        growth = "—" if a0 is None or a1 is None else f"{(a1 - a0) * 1e3:+.2f} ms"
        w(f"| `{k}` | {ms(a0)} | {ms(a1)} | {growth} |")
    w("")
    if sc:
        w("Syscall evidence (`strace -f -c`, one run each): directory reads of the scan.")
        w("")
        w("| command | processes on host | getdents64 calls | all syscalls |")
        w("|---|---:|---:|---:|")
        for label, row in sc.items():
            cmd, tag = label.rsplit("/", 1)
            w(f"| `{cmd}` | +{tag} | {row[1]} | {row[2] if len(row) > 2 else '?'} |")
        w("")

    # ---- concurrency
    w(f"## {meta.get('CONC', '100')} containers started concurrently")
    w("")
    w("Time until every container's PID runs its program (`sleep`): all `create` + `start` "
      "pairs launched at once by `bench/helper concurrent` (runc's rootless spec, own PID "
      f"namespace each), {meta.get('CONC_RUNS', '?')} runs.")
    w("")
    w("| runtime | median ms | min ms | per container ms | × runc |")
    w("|---|---:|---:|---:|---:|")
    c_r = med(conc.get("runc", []))
    cn = int(meta.get("CONC", "100"))
    for k in ("husk", "runc"):
        ts = conc.get(k)
        if ts:
            w(f"| {k} | {ms(med(ts), 1)} | {ms(min(ts), 1)} | {ms(med(ts) / cn)} | {ratio(med(ts), c_r)} |")
    w("")

    # ---- memory
    mem = tsv(os.path.join(d, "memory.tsv"))
    if mem:
        w("## Peak memory")
        w("")
        w("Max RSS as `wait4()` reports it (`/usr/bin/time -f %M`): the process and the children "
          f"it reaped; the largest of {meta.get('MEM_REPS', '?')} runs. For `husk run` that "
          "execs in place it is the larger of husk and `/bin/true`.")
        w("")
        w("| command | max RSS KiB |")
        w("|---|---:|")
        for label, v, *_ in mem:
            cmd, _, tag = label.rpartition("/")
            if cmd and tag.isdigit():
                label = f"{cmd}, {tag} other processes"
            w(f"| `{label}` | {v} |")
        w("")

    analysis = os.path.join(HERE, "analysis.md")
    if os.path.exists(analysis):
        w(open(analysis).read().rstrip())
        w("")

    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(out) + "\n")
    if start:
        plot(start, a.png)


if __name__ == "__main__":
    main()
