"""Draws sudoku-fast-h200.png from h200-sudoku-fast-curves.json (run from the project root)."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

d = json.load(open("docs/measurements/h200-sudoku-fast-curves.json"))
full, short, paper = d["seed0_full"], d["short_runs"], d["paper_recipe"]
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
a.plot([w / 60 for w in full["wall_s"]], [100 * x for x in full["exact"]], "o-", label="sudoku_fast (15,000 steps), seed 0")
a.plot([w / 60 for w in short["seed1"]["wall_s"]], [100 * x for x in short["seed1"]["exact"]], "^:", alpha=0.6,
       label="sudoku_fast, 11,000-step setting, seed 1 (cut)")
a.plot(paper["minutes"], [100 * x for x in paper["exact"]], "s--", label="paper recipe (sudoku_mlp)")
a.plot([full["wall_s"][-1] / 60], [100 * full["exact"][-1]], "*", ms=14, color="C0")
a.annotate(f"whole split {100 * full['exact'][-1]:.1f}%", (full["wall_s"][-1] / 60, 100 * full["exact"][-1]),
           (14, 45), fontsize=8, arrowprops={"arrowstyle": "->", "lw": 0.6})
a.axhline(87.4, color="grey", lw=0.8, ls=":"); a.text(14.5, 89, "paper's final 87.4%", color="grey", fontsize=8)
a.axvline(20, color="grey", lw=0.8, ls=":")
a.set_xlabel("wall-clock minutes of trm run (one H200)"); a.set_ylabel("test exact accuracy, %"); a.set_xlim(0, 23)
a.set_ylim(0, 95); a.legend(loc="upper left", fontsize=8); a.grid(alpha=0.3); a.set_title("exact accuracy against time")
b.plot(full["step"], [100 * x for x in full["exact"]], "o-", label="seed 0, 15,000 steps")
b.plot(short["seed0"]["step"], [100 * x for x in short["seed0"]["exact"]], "^:", alpha=0.6, label="seed 0, 11,000-step setting")
b.plot(short["seed1"]["step"], [100 * x for x in short["seed1"]["exact"]], "v:", alpha=0.6, label="seed 1, 11,000-step setting")
for x in (4500, 9000):
    b.axvline(x, color="grey", lw=0.8, ls=":")
b.text(800, 76, "T=1,n=2", fontsize=8); b.text(5200, 76, "T=2,n=4", fontsize=8); b.text(11000, 76, "T=3,n=6", fontsize=8)
b.set_xlabel("optimizer step (phase lines: the 15,000-step run)"); b.set_ylabel("test exact accuracy, %")
b.set_ylim(0, 80); b.grid(alpha=0.3); b.legend(loc="lower right", fontsize=8); b.set_title("against steps")
fig.suptitle("recipes/sudoku_fast.yaml, 2,048-puzzle test subset (star: all 46,198), adaptive halting, NVIDIA H200",
             fontsize=10)
fig.tight_layout(); fig.savefig("docs/measurements/sudoku-fast-h200.png", dpi=90)
