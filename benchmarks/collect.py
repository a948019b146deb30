"""Summarise Chinese-MNIST runs (results.json files) as a Markdown table.

Run: ``python benchmarks/collect.py runs/*/results.json``
"""

from __future__ import annotations

import json
import statistics
import sys


def main(paths: list[str]) -> None:
    rows = [json.load(open(p, encoding="utf-8")) for p in paths]
    rows.sort(key=lambda r: (r["model"], r["split"], r["seed"]))
    print("| model | split | seed | test accuracy | val accuracy (restored epoch) | epochs (restored / run) "
          "| minutes | augmentation share |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['split']} | {r['seed']} | {r['test_accuracy']:.2%} | {r['best_val_accuracy']:.2%} | "
              f"{r['best_epoch']} / {r['epochs_run']} | {r['train_minutes']:.1f} | {r['augment_share']:.0%} |")
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["split"]), []).append(r["test_accuracy"])
    print()
    for (model, split), accs in sorted(groups.items()):
        spread = f" ± {statistics.stdev(accs):.2%}" if len(accs) > 1 else ""
        print(f"- {model}, {split} split: mean test accuracy {statistics.mean(accs):.2%}{spread} over {len(accs)} seed(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
