"""Draws sudoku-fast-h200.png from h200-sudoku-fast-curves.json (run from the project root)."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

d = json.load(open("docs/measurements/h200-sudoku-fast-curves.json"))
runs = [(d["seed0_full"], "seed 0 (depth cap 16)", "o-"), (d["seed1_full"], "seed 1 (depth cap 32, the recipe now)", "D-"),
        (d["seed2_full"], "seed 2 (depth cap 32)", "^-")]
paper = d["paper_recipe"]
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
for i, (run, label, style) in enumerate(runs):
    color = ("C0", "C1", "C3")[i]
    a.plot([w / 60 for w in run["wall_s"]], [100 * x for x in run["exact"]], style, color=color, ms=4,
           label=f"sudoku_fast, {label}")
    a.plot([run["wall_s"][-1] / 60], [100 * run["exact"][-1]], "*", ms=14, color=color)
    a.annotate(f"whole split {100 * run['exact'][-1]:.1f}%", (run["wall_s"][-1] / 60, 100 * run["exact"][-1]),
               (0.5, 74 - 7 * i), fontsize=8, color=color, arrowprops={"arrowstyle": "->", "lw": 0.6, "color": color})
    b.plot(run["step"], [100 * x for x in run["exact"]], style, color=color, ms=4, label=label)
a.plot(paper["minutes"], [100 * x for x in paper["exact"]], "s--", color="C2", label="paper recipe (sudoku_mlp)")
a.axhline(87.4, color="grey", lw=0.8, ls=":"); a.text(0.5, 89, "paper's final 87.4%", color="grey", fontsize=8)
a.axvline(20, color="grey", lw=0.8, ls=":")
a.set_xlabel("wall-clock minutes of trm run (one H200)"); a.set_ylabel("test exact accuracy, %"); a.set_xlim(0, 23)
a.set_ylim(0, 95); a.legend(loc="lower right", bbox_to_anchor=(1.0, 0.25), fontsize=8); a.grid(alpha=0.3); a.set_title("exact accuracy against time")
for x in (4500, 9000):
    b.axvline(x, color="grey", lw=0.8, ls=":")
b.text(800, 80, "T=1,n=2", fontsize=8); b.text(5200, 80, "T=2,n=4", fontsize=8); b.text(11000, 80, "T=3,n=6", fontsize=8)
b.set_xlabel("optimizer step (lines: depth-curriculum phases)"); b.set_ylabel("test exact accuracy, %")
b.set_ylim(0, 85); b.grid(alpha=0.3); b.legend(loc="lower right", fontsize=8); b.set_title("against steps")
fig.suptitle("recipes/sudoku_fast.yaml, 2,048-puzzle test subset (star: all 46,198), adaptive halting, NVIDIA H200",
             fontsize=10)
fig.tight_layout(); fig.savefig("docs/measurements/sudoku-fast-h200.png", dpi=90)
