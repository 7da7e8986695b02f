"""llama.cpp builds and thread counts on SmolLM2, measured side by side in one run.

Usage: python bench/runtime.py [--build NAME=SITE_DIR ...]

Each build is imported from its own directory (``pip install --no-deps --target DIR WHEEL``;
the installed one is ``installed``) in a child process, so builds never mix. Per build, one
thread: prompt processing (a 128-token chunk per decode call, psyprobe's logprob path) and
token-by-token decoding, in tokens per CPU-second; and the SD-3 scores of a fixed set of
prompts, to see how far another kernel set moves the numbers. Then, for the installed build,
1 and 2 threads alone and beside one other CPU-bound process (wall-clock tokens/s).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
from llama_cpp import Llama, llama_print_system_info
path, threads = sys.argv[1], int(sys.argv[2])
if threads == 0:  # psyprobe's default, decided when the model loads
    from psyprobe.models.llamacpp import default_threads
    threads = default_threads()
llm = Llama(path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
text = b"The quick brown fox jumps over the lazy dog while the cat watches from the fence. " * 12
tokens = llm.tokenize(text)[:128]
def cpu():
    return time.process_time(), time.perf_counter()
llm.eval(tokens[:8]); llm.reset()  # warm-up
c0, w0 = cpu()
for _ in range(6):
    llm.reset(); llm.eval(tokens)
c1, w1 = cpu()
llm.reset(); llm.eval(tokens[:8])
for t in tokens[8:72]:
    llm.eval([t])
c2, w2 = cpu()
print(json.dumps({
    "system": " ".join(llama_print_system_info().decode().split()),
    "pp_per_cpu_s": 6 * len(tokens) / (c1 - c0), "pp_per_s": 6 * len(tokens) / (w1 - w0),
    "tg_per_cpu_s": 64 / (c2 - c1), "tg_per_s": 64 / (w2 - w1),
}))
"""

SCORES = r"""
import json, sys
from psyprobe.models import open_model
from psyprobe.prompting import TEMPLATES, build_prompts
from psyprobe.instruments import load_instrument
model = open_model("smollm2")
inst = load_instrument("sd3")
prompts = [p.prompt for p in build_prompts("sd3", inst.questions(), "latin", TEMPLATES["study-a"])]
print(json.dumps([a.probs for a in model.option_probs(prompts)]))
"""


def _child(code: str, site: str | None, *args: str, wait: str | None = None) -> str:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site
    if wait:
        env["OMP_WAIT_POLICY"] = wait
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip().splitlines()[-1]


def _busy() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", action="append", default=[], help="NAME=SITE_DIR")
    args = parser.parse_args()
    from psyprobe.models.registry import ALIASES

    path = str(ALIASES["smollm2"].path())
    builds: dict[str, str | None] = {"installed": None}
    builds.update(dict(b.split("=", 1) for b in args.build))
    with open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} logical CPUs")
    print("\n## builds, one thread (tokens per CPU-second)")
    if os.environ.get("BENCH_THREADS_ONLY"):
        builds = {}
    reference = None
    for name, site in builds.items():
        m = json.loads(_child(CHILD, site, path, "1"))
        probs = json.loads(_child(SCORES, site))
        if reference is None:
            reference, delta = probs, 0.0
        else:
            delta = max(
                abs(a - b)
                for pa, pb in zip(probs, reference, strict=True)
                for a, b in zip(pa, pb, strict=True)
            )
        print(
            f"{name:10s} prompt {m['pp_per_cpu_s']:7.1f}  decode {m['tg_per_cpu_s']:6.1f}  "
            f"max |Δp| vs installed (SD-3 latin) {delta:.2e}\n           {m['system']}"
        )
    print("\n## threads, installed build (wall-clock tokens/s)")
    for others in (0, 1):
        hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(others)]
        for h in hogs:
            h.start()
        time.sleep(0.5)
        for threads, wait in ((1, "active"), (2, "active"), (2, "passive"), (0, "active")):
            m = json.loads(_child(CHILD, None, path, str(threads), wait=wait))
            shown = f"threads {threads}" if threads else "default  "
            print(
                f"{shown}, OMP_WAIT_POLICY={wait:7s}, {others} other busy "
                f"process(es): prompt {m['pp_per_s']:7.1f} tok/s, decode {m['tg_per_s']:6.1f} tok/s"
            )
        for h in hogs:
            h.terminate()


if __name__ == "__main__":
    main()
