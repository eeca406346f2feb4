"""The summary of scripts/bench-ab.sh compare A B: reads its runs (figure, unit, better, side A or B, value;
tab-separated, one a line) on standard input and prints, per figure, every run of A and B, the medians, each side's spread,
the ratio B/A of the medians and the ratios of the runs of each round, then the same as a Markdown table.

A figure's verdict: "within the spread" while the two sides' ranges of runs overlap; otherwise B is
"faster" or "slower" (by the figure's direction: higher or lower is better)."""

import statistics
import sys


def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def main():
    a, b = sys.argv[1], sys.argv[2]
    if a == b:  # a build against itself: the spread of the machine
        a, b = a + ":A", b + ":B"
    figures = {}
    for line in sys.stdin:
        figure, unit, better, side, value = line.rstrip("\n").split("\t")
        f = figures.setdefault(figure, {"unit": unit, "better": better, a: [], b: []})
        f[a if side == "A" else b].append(float(value))
    rows = []
    for figure, f in figures.items():
        ra, rb = f[a], f[b]
        if not ra or not rb:
            continue
        ma, mb = statistics.median(ra), statistics.median(rb)
        spread = {s: (max(r) - min(r)) / m * 100 if m else 0.0 for s, r, m in ((a, ra, ma), (b, rb, mb))}
        ratio = mb / ma if ma else float("nan")
        if len(ra) < 2 or len(rb) < 2:
            verdict = "one run: no spread to judge by"
        elif min(rb) > max(ra) or max(rb) < min(ra):
            b_higher = min(rb) > max(ra)
            verdict = f"{b} " + ("faster" if b_higher == (f["better"] == "higher") else "slower") + " (the runs do not overlap)"
        else:
            verdict = "within the spread"
        print(f"{figure} ({f['unit']}, {f['better']} is better)")
        for s, r, m in ((a, ra, ma), (b, rb, mb)):
            print(f"  {s:<10} {'  '.join(fmt(v) for v in r):<40} median {fmt(m):>8}  spread {spread[s]:4.1f}%")
        # Runs of one round ran side by side: their ratio is free of the drift between rounds.
        paired = [y / x for x, y in zip(ra, rb) if x]
        print(f"  {b}/{a} = {ratio:.3f}: {verdict}; per round {'  '.join(f'{r:.2f}' for r in paired)},"
              f" median {statistics.median(paired):.3f}")
        rows.append((figure, f["unit"], ra, rb, ma, mb, ratio, statistics.median(paired), verdict))
    print()
    print(f"| figure | {a} runs | {b} runs | median {a} | median {b} | {b}/{a} | median of the rounds' {b}/{a} | |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for figure, unit, ra, rb, ma, mb, ratio, paired, verdict in rows:
        print(f"| {figure} ({unit}) | {', '.join(fmt(v) for v in ra)} | {', '.join(fmt(v) for v in rb)} | {fmt(ma)} | {fmt(mb)}"
              f" | {ratio:.2f} | {paired:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
