"""Turns the fio JSON of one scripts/bench run into report.md and results.json (and prints the table)."""
import json
import os
import platform
import subprocess
import sys

results, quick, targets, commit = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]

JOBS = [
    ("a", "a", "checkpoint write 1x, bs=1M, end_fsync", "write", "bw"),
    ("b", "b", "checkpoint shards 4x, bs=1M, end_fsync", "write", "bw"),
    ("c", "c", "checkpoint read (cache dropped), bs=1M", "read", "bw"),
    ("d-buffered", "d", "random 4 KiB reads, 4 jobs, buffered", "read", "iops"),
    ("d-direct", "d", "random 4 KiB reads, 4 jobs, O_DIRECT", "read", "iops"),
    ("e-buffered", "e", "random 128 KiB reads, 4 jobs, buffered", "read", "bw"),
    ("e-direct", "e", "random 128 KiB reads, 4 jobs, O_DIRECT", "read", "bw"),
    ("f-create", "f", "create small files", "write", "iops"),
    ("f-stat", "f", "stat small files", "read", "iops"),
    ("f-unlink", "f", "unlink small files", "read", "iops"),
    ("g-alone", "g", "random 4 KiB read latency, alone", "read", "lat"),
    ("g-during-write", "g", "random 4 KiB read latency, during (a)", "read", "lat"),
]


def load(job, side):
    path = os.path.join(results, f"{job}.{side}.json")
    if not os.path.exists(path):
        return None, "not run"
    try:
        with open(path) as f:
            text = f.read()
        data = json.loads(text[text.index("{"):])
    except (ValueError, OSError) as e:
        err = os.path.join(results, f"{job}.{side}.err")
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


def show(m, kind):
    if kind == "bw":
        return f"{m['mb_s']:,.0f} MB/s"
    if kind == "iops":
        return f"{m['iops']:,.0f} IOPS"
    return f"p50 {m['p50_us']:,.0f} us, p99 {m['p99_us']:,.0f} us"


def value(m, kind):
    return m["mb_s"] if kind == "bw" else m["iops"] if kind == "iops" else m["p99_us"]


rows, records = [], []
for job, letter, title, _, kind in JOBS:
    p, perr = load(job, "parafs")
    l, lerr = load(job, "local")
    if perr == "not run" and lerr == "not run":
        continue
    ratio = ""
    if p and l and value(l, kind):
        # For latency the ratio is local p99 / ParaFS p99, so higher is better everywhere.
        r = value(l, kind) / value(p, kind) if kind == "lat" else value(p, kind) / value(l, kind)
        ratio = f"{r:.2f}" if value(p, kind) else ""
    rows.append(f"| ({letter}) {title} | {show(p, kind) if p else perr} | {show(l, kind) if l else lerr} | {ratio} |")
    records.append({"job": job, "title": title, "parafs": p or perr, "local": l or lerr, "ratio": ratio})


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
    f"commit {commit}; {targets} targets; {machine['cpus']} cores, {machine['memory']} memory, kernel {machine['kernel']}",
    f"ParaFS mount (parafs up, loopback) and a local directory on the same disk: {machine['disk']}",
    "ratio = ParaFS / local (for latency: local p99 / ParaFS p99); higher is better",
    "",
    "| job | ParaFS | local | ratio |",
    "|---|---|---|---|",
]
report = "\n".join(header + rows) + "\n"
print(report)
with open(os.path.join(results, "report.md"), "w") as f:
    f.write(report)
with open(os.path.join(results, "results.json"), "w") as f:
    json.dump({"commit": commit, "quick": quick, "targets": int(targets), "machine": machine, "jobs": records}, f, indent=2)
