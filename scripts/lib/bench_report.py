"""Turns the fio JSON of one scripts/bench run into report.md and results.json (and prints the table).

With several rounds, each cell is the median of the rounds with their range, and the ratio is
taken within each round (ParaFS against the local run of the same round) before its median.
"""
import json
import os
import platform
import statistics
import subprocess
import sys

results, quick, targets, rounds, commit = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4]), sys.argv[5]
settle = sys.argv[6] if len(sys.argv) > 6 else "?"
mount_options = sys.argv[7] if len(sys.argv) > 7 else "none"

JOBS = [
    ("a", "a", "checkpoint write 1x, bs=1M, end_fsync", "write", "bw"),
    ("b", "b", "checkpoint shards 4x, bs=1M, end_fsync", "write", "bw"),
    ("c", "c", "checkpoint read (cache dropped), bs=1M", "read", "bw"),
    ("c-settled", "c", f"the same read, {settle} s after dropping the cache again", "read", "bw"),
    ("c-warm", "c", "the same read, the cache dropped and twice the file's size of memory filled and freed just before", "read", "bw"),
    ("c-held", "c", "the same as (a) then (c), with the VM's free page reporting held off and memory filled and freed before (as without a balloon)", "read", "bw"),
    ("d-buffered", "d", "random 4 KiB reads, 4 jobs, buffered", "read", "iops"),
    ("d-direct", "d", "random 4 KiB reads, 4 jobs, O_DIRECT", "read", "iops"),
    ("e-buffered", "e", "random 128 KiB reads, 4 jobs, buffered", "read", "bw"),
    ("e-direct", "e", "random 128 KiB reads, 4 jobs, O_DIRECT", "read", "bw"),
    ("f-create", "f", "create small files", "write", "iops"),
    ("f-stat", "f", "stat small files", "read", "iops"),
    ("f-unlink", "f", "unlink small files", "read", "iops"),
    ("g-alone", "g", "random 4 KiB read latency, alone", "read", "lat"),
    ("g-during-write", "g", "random 4 KiB read latency, during (a)", "read", "lat"),
    ("g-writer", "g", "the (a) writer's own rate beside those reads", "write", "bw"),
    ("h", "h", "data loading: 4 jobs, each its own share of the small files (128 KiB) in random order, open/read/close per file, cache dropped (files/s)", "read", "iops"),
    ("g-during-direct-write", "g", "random 4 KiB read latency, beside an O_DIRECT 1 MiB writer (local only: the device's own limit)", "read", "lat"),
]

# Jobs run on the local side only, as a reference for the machine; no ParaFS figure, no ratio.
LOCAL_ONLY = {"g-during-direct-write"}


def load(job, side, round_):
    path = os.path.join(results, f"{job}.{side}.r{round_}.json")
    if not os.path.exists(path):
        return None, "not run"
    try:
        with open(path) as f:
            text = f.read()
        data = json.loads(text[text.index("{"):])
    except (ValueError, OSError) as e:
        err = os.path.join(results, f"{job}.{side}.r{round_}.err")
        reason = open(err).read().strip().splitlines()[-1:] if os.path.exists(err) else [str(e)]
        return None, "failed: " + " ".join(reason)
    jobs = data["jobs"]
    direction = next(d for (j, _, _, d, _) in JOBS if j == job)
    io = [j[direction] for j in jobs]
    bw = sum(x["bw_bytes"] for x in io) / 1e6
    iops = sum(x["iops"] for x in io)
    pct = io[0].get("clat_ns", {}).get("percentile", {})
    p50 = pct.get("50.000000", 0) / 1000
    p99 = pct.get("99.000000", 0) / 1000
    return {"mb_s": round(bw, 1), "iops": round(iops, 1), "p50_us": round(p50, 1), "p99_us": round(p99, 1)}, None


def value(m, kind):
    return m["mb_s"] if kind == "bw" else m["iops"] if kind == "iops" else m["p99_us"]


def ratio_of(p, l, kind):
    """ParaFS against local, higher is better: for latency, local p99 / ParaFS p99."""
    if not p or not l or not value(l, kind) or not value(p, kind):
        return None
    return value(l, kind) / value(p, kind) if kind == "lat" else value(p, kind) / value(l, kind)


def spread(values, fmt):
    """The median, and with more than one value the range: '1,864 (1,651-2,093)'."""
    middle = fmt(statistics.median(values))
    return middle if len(values) == 1 else f"{middle} ({fmt(min(values))}-{fmt(max(values))})"


def show(measures, kind):
    if kind == "bw":
        return spread([m["mb_s"] for m in measures], lambda v: f"{v:,.0f}") + " MB/s"
    if kind == "iops":
        return spread([m["iops"] for m in measures], lambda v: f"{v:,.0f}") + " IOPS"
    p50 = statistics.median(m["p50_us"] for m in measures)
    return f"p50 {p50:,.0f} us, p99 " + spread([m["p99_us"] for m in measures], lambda v: f"{v:,.0f}") + " us"


def first_error(per_round, side):
    """Why a side has no figure: the first round's error."""
    for pair in per_round:
        _, error = pair[side]
        if error:
            return error
    return "no result"


rows, records = [], []
for job, letter, title, _, kind in JOBS:
    per_round = [(load(job, "parafs", r), load(job, "local", r)) for r in range(1, rounds + 1)]
    if all(perr == "not run" and lerr == "not run" for (_, perr), (_, lerr) in per_round):
        continue
    parafs = [p for (p, _), _ in per_round if p]
    local = [l for _, (l, _) in per_round if l]
    ratios = [r for r in (ratio_of(p, l, kind) for (p, _), (l, _) in per_round) if r is not None]
    cell_p = show(parafs, kind) if parafs else "-" if job in LOCAL_ONLY else first_error(per_round, 0)
    cell_l = show(local, kind) if local else first_error(per_round, 1)
    cell_r = spread(ratios, lambda v: f"{v:.2f}") if ratios else ""
    rows.append(f"| ({letter}) {title} | {cell_p} | {cell_l} | {cell_r} |")
    records.append({
        "job": job, "title": title,
        "parafs": [p or e for (p, e), _ in per_round],
        "local": [l or e for _, (l, e) in per_round],
        "ratio": [round(r, 3) for r in ratios],
    })


# The first performance pass's targets: a ratio to the local directory (higher is better), and
# for (g) ParaFS's own p99 during a checkpoint write against its p99 alone (lower is better).
TARGETS = [("a", ">=", 0.7), ("b", ">=", 0.7), ("c", ">=", 0.7), ("d-buffered", ">=", 0.3)]


def target_lines():
    by_job = {r["job"]: r for r in records}
    lines = []
    for job, _, goal in TARGETS:
        if job in by_job and by_job[job]["ratio"]:
            got = statistics.median(by_job[job]["ratio"])
            lines.append(f"- ({job}) ratio {got:.2f}, target >= {goal}: {'met' if got >= goal else 'not met'}")
        if job == "c" and by_job.get("c-settled", {}).get("ratio"):
            got = statistics.median(by_job["c-settled"]["ratio"])
            lines.append(f"  - (c) read {settle} s after the cache drop: ratio {got:.2f} (both sides then read into memory the VM has taken back; see README)")
        if job == "c" and by_job.get("c-warm", {}).get("ratio"):
            got = statistics.median(by_job["c-warm"]["ratio"])
            lines.append(f"  - (c) read into warmed memory: ratio {got:.2f} (both sides then read into memory the VM has not taken back; see README)")
        if job == "c" and by_job.get("c-held", {}).get("ratio"):
            got = statistics.median(by_job["c-held"]["ratio"])
            lines.append(f"  - (c) right after the drop with the VM's free page reporting held off: ratio {got:.2f} (memory as on a machine without a balloon; see README)")
    alone = by_job.get("g-alone", {}).get("parafs", [])
    during = by_job.get("g-during-write", {}).get("parafs", [])
    slow = [d["p99_us"] / a["p99_us"] for a, d in zip(alone, during) if isinstance(a, dict) and isinstance(d, dict) and a["p99_us"]]
    if slow:
        got = statistics.median(slow)
        lines.append(f"- (g) ParaFS p99 during a write / alone {got:.1f}x, target <= 3x: {'met' if got <= 3 else 'not met'}")
    local_alone = by_job.get("g-alone", {}).get("local", [])
    local_direct = by_job.get("g-during-direct-write", {}).get("local", [])
    device = [d["p99_us"] / a["p99_us"] for a, d in zip(local_alone, local_direct) if isinstance(a, dict) and isinstance(d, dict) and a["p99_us"]]
    if device:
        lines.append(f"  - the device's own: local p99 beside an O_DIRECT writer / alone {statistics.median(device):.1f}x "
                     "(the local (a) writer reaches the disk through writeback, which the kernel keeps from crowding out reads; "
                     "direct writes, which the OSTs make, are not held back: see README)")
    title = "Targets (a quick smoke run: sizes too small to judge them):" if quick else "Targets (medians over the rounds):"
    return ["", title, *lines] if lines else []


def sh(cmd):
    try:
        return subprocess.check_output(cmd, shell=True, text=True).strip()
    except subprocess.CalledProcessError:
        return "unknown"


machine = {
    "cpus": os.cpu_count(),
    "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
    "kernel": platform.release(),
    "disk": sh(f"df -h {results} | tail -1"),
}
header = [
    f"# ParaFS benchmark ({'quick smoke run' if quick else 'full'})",
    "",
    f"commit {commit}; {targets} targets; {rounds} round{'s' if rounds > 1 else ''}; {machine['cpus']} cores, {machine['memory']} memory, kernel {machine['kernel']}",
    f"ParaFS mount (parafs up, loopback; mount options: {mount_options}) and a local directory on the same disk: {machine['disk']}",
    "ratio = ParaFS / local (for latency: local p99 / ParaFS p99); higher is better"
    + ("; each cell: median (min-max) of the rounds, the ratio taken within each round" if rounds > 1 else ""),
    "",
    "| job | ParaFS | local | ratio |",
    "|---|---|---|---|",
]
report = "\n".join(header + rows + target_lines()) + "\n"
print(report)
with open(os.path.join(results, "report.md"), "w") as f:
    f.write(report)
with open(os.path.join(results, "results.json"), "w") as f:
    json.dump({"commit": commit, "quick": quick, "targets": int(targets), "rounds": rounds, "mount_options": mount_options, "machine": machine, "jobs": records}, f, indent=2)
