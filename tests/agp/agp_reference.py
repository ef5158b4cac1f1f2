#!/usr/bin/env python3
"""An independent computation of the AGP report's figures from a CGM CSV
(patient_id,timestamp,glucose_mg_dl), written separately from the Rust
implementation with Python's standard library, for the end-to-end test that
compares the web report against it.

Definitions (international consensus, Battelino et al. 2019, 2023):
  bands: <54, 54-69 (54 <= g < 70), 70-180 (inclusive), 181-250 (180 < g <= 250), >250;
  mean; GMI = 3.31 + 0.02392 * mean; CV = sample SD / mean * 100;
  CGM active = share of the period's 5-minute slots holding a reading;
  modal day = 5/25/50/75/95th percentiles per 15-minute bin of the day
  (linear interpolation between closest ranks: statistics.quantiles, inclusive).

usage: agp_reference.py FILE.csv FROM_DATE TO_DATE   (dates inclusive, UTC)
"""
import csv
import datetime as dt
import json
import statistics
import sys


def main() -> None:
    path, first, last = sys.argv[1:4]
    start = dt.datetime.fromisoformat(first + "T00:00:00+00:00")
    end = dt.datetime.fromisoformat(last + "T00:00:00+00:00") + dt.timedelta(days=1)
    readings = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            t = dt.datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
            if start <= t < end:
                readings.append((t, float(row["glucose_mg_dl"])))
    readings = sorted(set(readings))
    values = [g for _, g in readings]
    n = len(values)

    def share(test):
        return 100.0 * sum(1 for g in values if test(g)) / n

    bands = {
        "very_low": share(lambda g: g < 54),
        "low": share(lambda g: 54 <= g < 70),
        "in_range": share(lambda g: 70 <= g <= 180),
        "high": share(lambda g: 180 < g <= 250),
        "very_high": share(lambda g: g > 250),
    }
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    slot = dt.timedelta(minutes=5)
    slots = -(-(end - start) // slot)  # ceiling division
    active = len({(t - start) // slot for t, _ in readings})

    bins = [[] for _ in range(96)]
    for t, g in readings:
        bins[(t.hour * 60 + t.minute) // 15].append(g)
    modal = []
    for b in bins:
        if not b:
            modal.append(None)
        elif len(b) == 1:
            modal.append([b[0]] * 5)
        else:
            q = statistics.quantiles(b, n=100, method="inclusive")  # q[k-1] is the k-th percentile
            modal.append([q[4], q[24], q[49], q[74], q[94]])

    print(json.dumps({
        "readings": n,
        "bands": bands,
        "mean": mean,
        "gmi": 3.31 + 0.02392 * mean,
        "cv": 100.0 * sd / mean,
        "active": 100.0 * active / slots,
        "modal": modal,
    }))


if __name__ == "__main__":
    main()
