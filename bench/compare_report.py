"""Prints the reports bench/compare.sh collected, before beside after, as
Markdown tables: each series' rate and latency, each process's CPU and peak
memory, each unlock's stages from the database, and the ceilings each run
measured with the ratios to them.

    python3 bench/compare_report.py OUT_DIR NAME...
"""

import json
import sys
from pathlib import Path

# One exchange costs one Argon2 hash (its code) and one verification (the collect).
ARGON2_OPS_PER_EXCHANGE = 2


def load(out, label, name):
    path = Path(out) / f"{label}-{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def ratios(report):
    """The run's figures as shares of the ceilings it measured."""
    lines = []
    ceilings = report.get("ceilings") or {}
    series = report.get("series", {})
    argon = (ceilings.get("argon2") or {}).get("verifications_per_second")
    exchange = series.get("exchange (drop → sender email)")
    if argon and exchange:
        bound = argon / ARGON2_OPS_PER_EXCHANGE
        each = (ceilings.get("argon2") or {}).get("verifications_per_second_each") or []
        sides = f"; before the run {each[0]:.1f}, after {each[1]:.1f}" if len(each) == 2 and None not in each else ""
        lines.append(
            f"{exchange['per_second']:.1f} exchanges/s = {100 * exchange['per_second'] / bound:.1f}% "
            f"of the Argon2 bound {bound:.1f}/s ({argon:.1f} Argon2 ops/s ÷ {ARGON2_OPS_PER_EXCHANGE}{sides})"
        )
        lines += cpu_per_exchange(report, exchange["count"], ceilings["argon2"])
    tps = ceilings.get("pgbench_select_only_tps")
    reads = series.get("GET /lockers/by-place")
    if tps and reads:
        lines.append(
            f"{reads['per_second']:.0f} reads/s = {100 * reads['per_second'] / tps:.1f}% "
            f"of pgbench -S {tps:.0f} tps at {report['concurrency']} clients"
        )
        alone = ceilings.get("pgbench_by_place_tps")
        if alone:
            lines.append(
                f"by-place's own statement, run by pgbench: {alone:.0f} tps = {100 * alone / tps:.1f}% "
                f"of pgbench -S; the reads are {100 * reads['per_second'] / alone:.1f}% of it"
            )
    return lines


def door_path(before, after):
    """Each unlock's stages from the database, before beside after."""
    hops = {}
    for side, report in (("before", before), ("after", after)):
        for h in report.get("door_path") or []:
            hops.setdefault((h["purpose"], h["hop"]), {})[side] = h
    if not hops:
        return
    print("\n| unlock stage (from the database) | before p50 / p90 / p99 ms | after p50 / p90 / p99 ms |")
    print("|---|---|---|")
    for (purpose, hop), sides in hops.items():
        cells = [
            f"{h['p50_ms']} / {h['p90_ms']} / {h['p99_ms']}" if (h := sides.get(side)) else "–"
            for side in ("before", "after")
        ]
        print(f"| {purpose}: {hop} | " + " | ".join(cells) + " |")


def cpu_per_exchange(report, exchanges, argon):
    """The stack's Argon2 threads' CPU per operation against the probe's, and
    the rest of the machine's CPU (the benchmark's aside) per exchange."""
    hashing = sum((p or {}).get("argon2_cpu_seconds", 0) for p in report["processes"].values())
    machine = report.get("machine")
    if not exchanges or not hashing or not machine:
        return []
    bench = sum(s for c, s in machine["by_command"] if c == "locker-bench")
    alone = argon["cores"] / argon["verifications_per_second"]
    rest = machine["busy_cpu_seconds"] - hashing - bench
    return [
        f"Argon2 threads {hashing:.1f} CPU s = {1000 * hashing / (ARGON2_OPS_PER_EXCHANGE * exchanges):.1f} ms "
        f"an operation (alone {1000 * alone:.1f} ms); the rest but the benchmark {1000 * rest / exchanges:.1f} ms an exchange"
    ]


def main():
    out, names = sys.argv[1], sys.argv[2:]
    for name in names:
        before, after = load(out, "before", name), load(out, "after", name)
        if not before or not after:
            print(f"\n### {name}: missing report (see {out})")
            continue
        print(f"\n### {name}: {before['scenario']}, concurrency {before['concurrency']}\n")
        print("| series | before /s | p50 ms | p99 ms | max ms | after /s | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key in sorted(set(before["series"]) | set(after["series"])):
            cells = []
            for report in (before, after):
                s = report["series"].get(key)
                cells += (
                    [f"{s['per_second']:,.1f}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['max_ms']:.1f}"]
                    if s
                    else ["–"] * 4
                )
            print(f"| {key} | " + " | ".join(cells) + " |")
        door_path(before, after)
        print("\n| process | before CPU s | peak RSS MiB | after CPU s | peak RSS MiB |")
        print("|---|---|---|---|---|")
        for proc in sorted(set(before["processes"]) | set(after["processes"])):
            cells = []
            for report in (before, after):
                p = report["processes"].get(proc)
                cells += [f"{p['cpu_seconds']:.2f}", f"{p['peak_rss_mib']:.1f}"] if p else ["–", "–"]
            print(f"| {proc} | " + " | ".join(cells) + " |")
        for label, report in (("before", before), ("after", after)):
            errors = report.get("errors") or {}
            print(f"\n{label}: errors {errors if errors else 'none'}")
            for line in ratios(report):
                print(f"- {line}")
            beside = load(out, label, f"{name}.exchanges")
            exchange = beside and beside["series"].get("exchange (drop → sender email)")
            if exchange:
                print(
                    f"- beside the reads: {exchange['per_second']:.1f} exchanges/s "
                    f"(drop → sender email p50 {exchange['p50_ms']:.0f} ms, p99 {exchange['p99_ms']:.0f} ms)"
                )
            machine = report.get("machine")
            if machine:
                top = ", ".join(f"{c} {v:.1f}" for c, v in machine["by_command"][:8])
                print(f"- machine busy {machine['busy_cpu_seconds']:.1f} of {machine['cpu_seconds']:.1f} CPU s: {top}")


if __name__ == "__main__":
    main()
