"""``psyprobe steer``, ``dpo`` and ``capability``: edit a model and measure the edit.

Each command imports the machinery it runs (torch, transformers, TRL) in its own body.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from psyprobe.capability import CapabilitySettings
from psyprobe.cli.options import (
    ASKED,
    BACKEND,
    CAPABILITY,
    TORCH,
    Adapter,
    DryRun,
    ModelOpt,
    Persona,
    Steer,
    backend_flags,
    edits,
    personality_flags,
    setting_flags,
)
from psyprobe.cli.terminal import console, err
from psyprobe.errors import UserError
from psyprobe.models.registry import BackendOptions
from psyprobe.runs.settings import RunSettings

steer_app = typer.Typer(no_args_is_help=True, help="Build, sweep and export steering vectors.")
dpo_app = typer.Typer(no_args_is_help=True, help="Study A's DPO: preference pairs and training.")


def _hf(model: str, backend: BackendOptions) -> Any:
    from psyprobe.editing import open_edited

    if not model.startswith("hf:"):
        raise UserError(f"--model {model}: steering needs a transformers model (hf:PATH)")
    return open_edited(model, backend)


def _ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a comma-separated list of integers") from None


@steer_app.command("build")
@backend_flags(*TORCH)
def steer_build(
    model: ModelOpt = "hf:smollm2",
    dimension: Annotated[
        str, typer.Option(help="INSTRUMENT:DIMENSION, e.g. bfi:Agreeableness or oejts:JP")
    ] = "bfi:Agreeableness",
    poles: Annotated[
        str, typer.Option(help="TOWARD,AWAY: high,low or a type's letters (J,P)")
    ] = "high,low",
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layers; default middle half")
    ] = None,
    method: Annotated[str, typer.Option(help="mean-diff | pca")] = "mean-diff",
    source: Annotated[str, typer.Option(help="answers | personas")] = "answers",
    orders: Annotated[str, typer.Option(help="Option orders of the contrast prompts")] = "latin",
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="The .safetensors file to write")] = Path(
        "vector.safetensors"
    ),
    backend: BackendOptions = BACKEND,
) -> None:
    """Build a contrastive activation-addition vector for one dimension's two poles."""
    from psyprobe.editing import build_vector, save_vector
    from psyprobe.editing.contrast import check_dimension, contrast
    from psyprobe.editing.steering import decoder_layers, load_vector
    from psyprobe.runs.directory import claim_file

    pole_pair = tuple(p.strip() for p in poles.split(","))
    if len(pole_pair) != 2:
        raise UserError(f"--poles {poles!r}: give two poles, e.g. high,low")
    check_dimension(dimension, (pole_pair[0], pole_pair[1]), source)
    claim_file(out, load_vector)
    hf = _hf(model, backend)
    try:
        started = time.perf_counter()
        count = hf.model.config.num_hidden_layers
        chosen = _ints(layers, "--layers") or list(range(count // 4, 3 * count // 4 + 1, 2))
        bad = [i for i in chosen if not 0 <= i < count]
        if bad:
            raise UserError(f"--layers: {bad[0]} is not a layer of this model (0–{count - 1})")
        pairs = contrast(hf, dimension, (pole_pair[0], pole_pair[1]), source, orders, seed)
        names = {id(m): n for n, m in hf.model.named_modules()}
        blocks = decoder_layers(hf.model)
        vector = build_vector(
            hf,
            pairs.positive,
            pairs.negative,
            chosen,
            method,
            metadata={
                "model_spec": hf.info.spec,
                "model_fingerprint": hf.info.fingerprint,
                "dimension": dimension,
                "poles": list(pole_pair),
                "source": source,
                "orders": orders,
                "data_hash": pairs.data_hash(),
                "modules": {str(i): names[id(blocks[i])] for i in chosen},
            },
        )
        save_vector(vector, out)
        seconds = time.perf_counter() - started
    finally:
        hf.close()
    console.print(
        f"wrote {out}: {len(chosen)} layers, {len(pairs.positive)} pairs, {seconds:.1f} s; "
        f"norms {', '.join(f'{k}:{v:.2f}' for k, v in vector.metadata['norms'].items())}"
    )


@steer_app.command("sweep")
@backend_flags(*TORCH)
@personality_flags("orders", "respondents")
def steer_sweep(
    vector: Annotated[Path, typer.Option(help="A vector from `psyprobe steer build`")],
    model: ModelOpt = "hf:smollm2",
    layers: Annotated[
        str | None, typer.Option(help="Layers to try; default all in the file")
    ] = None,
    coefficients: Annotated[str, typer.Option(help="Comma-separated coefficients")] = "-8,-4,4,8",
    out: Annotated[Path, typer.Option(help="Sweep directory (rerun to resume)")] = Path(
        "psyprobe-sweep"
    ),
    dry_run: DryRun = False,
    backend: BackendOptions = BACKEND,
    asked: RunSettings = ASKED,
) -> None:
    """Measure the vector's dimension over layers × coefficients; pick the layer to use."""
    from psyprobe.cli.progress import print_forecast
    from psyprobe.editing import load_vector
    from psyprobe.editing.sweep import SWEEP_FILE
    from psyprobe.editing.sweep import sweep as run_sweep
    from psyprobe.engine import Personality, personality_settings
    from psyprobe.engine.forecast import forecast
    from psyprobe.progress import Reporter, duration
    from psyprobe.report.markdown import fmt
    from psyprobe.runs.directory import claim

    loaded = load_vector(vector)
    instrument, _, dimension = str(loaded.metadata.get("dimension", "")).partition(":")
    try:
        coefs = [float(c) for c in coefficients.split(",") if c.strip()]
    except ValueError:
        raise UserError(f"--coefficients: {coefficients!r} is not a list of numbers") from None
    tried = _ints(layers, "--layers") or sorted(loaded.layers)
    if not dry_run:
        claim(out)  # sweep.json and the figure go into it: never a folder of the user's
    with Reporter(err) as progress:
        progress.phase(f"loading {model}")
        hf = _hf(model, backend)
        try:
            measured = asked.model_copy(update={"instruments": (instrument,)})
            settings, _ = personality_settings(hf, measured)
            if dry_run:
                count = 1 + len(tried) * len([c for c in coefs if c != 0])
                made = forecast(Personality(settings), hf)
                print_forecast(made, f"instrument (each of {count} cells)")
                if made.seconds is not None:
                    console.print(f"all {count} cells: about {duration(count * made.seconds)}")
                return
            data = run_sweep(hf, vector, tried, coefs, settings, dimension, out, progress)
        finally:
            hf.close()
        progress.finish(f"measured {len(tried)} layers × {len(coefs)} coefficients")
    for layer, cells in data.cells.items():
        console.print(
            f"layer {layer}: "
            + "  ".join(
                f"{c:g}: {fmt(v.score, 2)} (valid {fmt(v.valid_rate, 2)}, {v.validity})"
                for c, v in cells.items()
            )
        )
    if data.use is None:
        console.print(data.choice.why, soft_wrap=True)
    else:
        console.print(f"chosen layer {data.choice.layer} ({data.choice.why}); {data.use}")
    console.print(f"wrote {out / SWEEP_FILE}, {out / 'dose_response.png'}")


@steer_app.command("export")
def steer_export(
    vector: Annotated[Path, typer.Argument(help="A .safetensors vector")],
    out: Annotated[Path, typer.Option(help="The control-vector .gguf to write")] = Path(
        "control.gguf"
    ),
    architecture: Annotated[str, typer.Option(help="llama.cpp model hint")] = "llama",
) -> None:
    """Write the vector as a llama.cpp control vector (``--control-vector``)."""
    from psyprobe.editing import load_vector
    from psyprobe.editing.steering import export_control_vector, read_control_vector
    from psyprobe.runs.directory import claim_file

    loaded = load_vector(vector)
    claim_file(out, read_control_vector)
    export_control_vector(loaded, out, architecture)
    console.print(f"wrote {out}")


@dpo_app.command("pairs")
def dpo_pairs_command(
    out: Annotated[Path, typer.Option(help="JSONL file of pairs")] = Path("dpo-pairs.jsonl"),
    orders: Annotated[str, typer.Option(help="Option orders of the pair prompts")] = "latin",
    seed: int = 0,
) -> None:
    """Preference pairs from BFI Agreeableness and Neuroticism items (SD-3 held out)."""
    from psyprobe.editing.dpo import dpo_pairs, read_pairs, write_pairs
    from psyprobe.runs.directory import claim_file

    claim_file(out, read_pairs)
    pairs = dpo_pairs(orders, seed)
    digest = write_pairs(pairs, out)
    console.print(f"wrote {len(pairs)} pairs to {out} ({digest[:19]}…)")


@dpo_app.command("train")
def dpo_train_command(
    pairs: Annotated[Path, typer.Option(help="Pairs from `psyprobe dpo pairs`")],
    model: ModelOpt = "hf:smollm2",
    out: Annotated[Path, typer.Option(help="Adapter directory")] = Path("dpo-adapter"),
    steps: Annotated[int, typer.Option(min=1)] = 100,
    learning_rate: float = 5e-5,
    beta: float = 0.1,
    lora_r: Annotated[int, typer.Option(min=1)] = 8,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    seed: int = 0,
) -> None:
    """DPO with a LoRA adapter (TRL); a GGUF model is converted to a saved HF model first."""
    from psyprobe.editing.dpo import read_pairs, train_dpo
    from psyprobe.models.hf import hf_model_dir
    from psyprobe.progress import Reporter
    from psyprobe.runs.directory import claim

    read_pairs(pairs)  # both checked before the model is converted or loaded
    claim(out)
    with Reporter(err) as progress:
        progress.phase(f"loading {model}")
        record = train_dpo(
            hf_model_dir(model),
            pairs,
            out,
            steps,
            learning_rate,
            beta,
            lora_r,
            batch_size,
            seed,
            progress,
        )
        progress.finish("training done")
    losses, resumed = record["losses"], record["resumed_from_step"]
    console.print(
        f"trained {steps} steps on {record['n_pairs']} pairs"
        + (f" (resumed from step {resumed})" if resumed else "")
        + f"; loss {losses[0]:.4f} → "
        f"{losses[-1]:.4f}; adapter in {out} (use --adapter {out})"
    )


@backend_flags(*TORCH)
@setting_flags(CapabilitySettings, "arc_limit", "perplexity_tokens", "seed")
def capability(
    model: ModelOpt = "smollm2",
    persona: Persona = None,
    steer: Steer = None,
    adapter: Adapter = None,
    out: Annotated[Path, typer.Option(help="Run directory (rerun to resume)")] = Path(
        "psyprobe-capability"
    ),
    backend: BackendOptions = BACKEND,
    asked: CapabilitySettings = CAPABILITY,
) -> None:
    """ARC accuracy (any backend with logprobs) and WikiText-2 perplexity (hf:)."""
    from psyprobe.cli.progress import measured_or_exit
    from psyprobe.editing import open_edited
    from psyprobe.engine import Capability
    from psyprobe.progress import Reporter
    from psyprobe.runs import Layout

    measure = Capability(asked)
    with Reporter(err) as progress:
        progress.phase(f"loading {model}")
        opened = open_edited(model, backend, edits(persona, steer, adapter))
        try:
            measured = measured_or_exit(measure, opened, out, progress)
        finally:
            opened.close()
        progress.finish(f"{measured.asked} new answers")
    console.print(Capability.summary(measured.results))
    files = Layout(out)
    console.print(f"wrote {files.capability_results}, {files.report}, {files.html}")
