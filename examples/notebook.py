# %% [markdown]
# # psyprobe in a notebook
#
# Measure three respondents with the Python API and compare them: the embedded SmolLM2 through
# llama.cpp, the same weights loaded in memory through transformers with a steering hook of our
# own, and a simulated respondent whose Machiavellianism is known to be low. Run it as a script
# (`python examples/notebook.py [OUT_DIR]`) or cell by cell (`# %%`) in an editor that knows
# cells. The tests run it (tests/test_api.py).

# %%
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; in a notebook, leave this out to see the figure inline
import matplotlib.pyplot as plt
import pandas as pd

import psyprobe

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="psyprobe-"))
SD3 = {"instruments": ["sd3"], "orders": "latin", "respondents": 0}

# %% The embedded model, by its spec
embedded = psyprobe.measure("smollm2", out=OUT / "smollm2", **SD3)
print(embedded.to_pandas())

# %% A simulated respondent with a known truth: the oracle the measurement is judged by
oracle = psyprobe.measure("sim:Machiavellianism=2", out=OUT / "sim", **SD3)
print(oracle.to_pandas())

# %% The same weights in memory, with a forward hook of our own on one decoder layer
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from psyprobe.models import ALIASES  # noqa: E402
from psyprobe.models.hf import saved_model_dir  # noqa: E402

folder, _ = saved_model_dir(ALIASES["smollm2"].path())  # converted once, then cached
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(folder)
layer = model.model.layers[len(model.model.layers) // 2]
push = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0))


def steer(module: torch.nn.Module, args: tuple, output: object) -> object:
    hidden = output[0] if isinstance(output, tuple) else output
    hidden = hidden + 4.0 * push / push.norm()
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


handle = layer.register_forward_hook(steer)
steered = psyprobe.measure(model, tokenizer=tokenizer, out=OUT / "steered", **SD3)
handle.remove()
print(steered.to_pandas())

# %% Side by side, with the verdicts: a no_signal score is a response style, not a trait
table = pd.concat(
    {
        "smollm2": embedded.to_pandas(),
        "smollm2 steered (in memory)": steered.to_pandas(),
        "sim:Machiavellianism=2": oracle.to_pandas(),
    },
    names=["model"],
).reset_index()
print(table.pivot(index="dimension", columns="model", values="score").round(2))

fig, ax = plt.subplots(figsize=(7, 3.5))
for offset, (name, rows) in enumerate(table.groupby("model", sort=False)):
    y = [i + 0.2 * (offset - 1) for i in range(len(rows))]
    silent = rows["validity"] == "no_signal"
    ax.errorbar(
        rows["score"],
        y,
        xerr=[rows["score"] - rows["ci_low"], rows["ci_high"] - rows["score"]],
        fmt="o",
        mfc="none" if silent.all() else None,
        label=f"{name}" + (" (no_signal)" if silent.all() else ""),
    )
ax.set_yticks(range(3), list(table["dimension"].unique()))
ax.set_xlim(1, 5)
ax.set_xlabel("SD-3 score (1–5), 95 % CI")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "sd3-three-ways.png", dpi=110)

# %% Every stored answer behind a score, for your own analysis
answers = embedded.answers()
print(answers[["item", "order_index", "option_order", "probs", "status"]].head())
print(f"figure: {OUT / 'sd3-three-ways.png'}")
