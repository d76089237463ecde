import json, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(open("docs/measurements/h200-sudoku-fast-curves.json"))
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
s1, s0, p = d["seed1"], d["seed0"], d["paper_recipe"]
a.plot([w / 60 for w in s1["wall_s"]], [100 * x for x in s1["exact"]], "o-", label="sudoku_fast, seed 1")
a.plot(p["minutes"], [100 * x for x in p["exact"]], "s--", label="paper recipe (sudoku_mlp)")
a.axhline(87.4, color="grey", lw=0.8, ls=":"); a.text(12, 89, "paper's final 87.4%", color="grey", fontsize=8)
a.set_xlabel("wall-clock minutes of trm run (one H200)"); a.set_ylabel("test exact accuracy, %"); a.set_xlim(0, 22)
a.set_ylim(0, 95); a.legend(loc="upper left"); a.grid(alpha=0.3); a.set_title("exact accuracy against time")
b.plot(s0["step"], [100 * x for x in s0["exact"]], "o-", label="seed 0")
b.plot(s1["step"], [100 * x for x in s1["exact"]], "o-", label="seed 1")
for x in (3300, 6600):
    b.axvline(x, color="grey", lw=0.8, ls=":")
b.text(1200, 66, "T=1,n=2", fontsize=8); b.text(3600, 66, "T=2,n=4", fontsize=8); b.text(6900, 66, "T=3,n=6", fontsize=8)
b.set_xlabel("optimizer step"); b.set_ylabel("test exact accuracy, %"); b.set_ylim(0, 70); b.grid(alpha=0.3)
b.legend(loc="lower right"); b.set_title("two seeds, same recipe")
fig.suptitle("recipes/sudoku_fast.yaml (max_steps 11000), 2,048-puzzle test subset, NVIDIA H200", fontsize=10)
fig.tight_layout(); fig.savefig("docs/measurements/sudoku-fast-h200.png", dpi=90)
