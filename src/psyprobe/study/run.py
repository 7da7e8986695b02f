"""Run a study: build its vectors and adapters once, then measure every condition durably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psyprobe.capability import CapabilitySettings
from psyprobe.editing import build_vector, open_edited, save_vector
from psyprobe.editing.contrast import contrast
from psyprobe.editing.dpo import dpo_pairs, train_dpo, write_pairs
from psyprobe.engine import Capability, Personality, Safety, run
from psyprobe.engine.measure import Watcher
from psyprobe.models import open_model
from psyprobe.models.registry import hf_model_dir
from psyprobe.runs import RunSettings
from psyprobe.runs.directory import claim, write_json, write_text
from psyprobe.safety.runner import SafetySettings
from psyprobe.study.render import draw_dose_response, render_study
from psyprobe.study.schema import Condition, Study, condition_edits, load_study
from psyprobe.study.summary import STUDY_FILE, StudySummary, summarize


def prepare(study: Study, out: Path) -> None:
    """Build the study's vectors and train its adapters, each only once."""
    for name, v in study.vectors.items():
        path = out / "vectors" / f"{name}.safetensors"
        if path.is_file():
            continue
        hf_model_dir(study.model)  # vectors need a transformers model: fail with one line
        hf: Any = open_model(study.model, study.backend)
        try:
            pairs = contrast(hf, v.dimension, v.poles, v.source, study.orders, study.seed)
            vector = build_vector(
                hf,
                pairs.positive,
                pairs.negative,
                list(v.layers),
                v.method,
                {
                    "dimension": v.dimension,
                    "poles": list(v.poles),
                    "data_hash": pairs.data_hash(),
                    "model_fingerprint": hf.info.fingerprint,
                },
            )
        finally:
            hf.close()
        save_vector(vector, path)
    for name, a in study.adapters.items():
        folder = out / "adapters" / name
        if (folder / "adapter_config.json").is_file():
            continue
        pairs_file = out / "adapters" / f"{name}-pairs.jsonl"
        write_pairs(dpo_pairs(study.orders, study.seed), pairs_file)
        train_dpo(
            hf_model_dir(study.model),
            pairs_file,
            folder,
            a.steps,
            a.learning_rate,
            a.beta,
            a.lora_r,
            a.batch_size,
            study.seed,
        )


def run_condition(study: Study, c: Condition, out: Path, watcher: Watcher | None = None) -> None:
    """One condition's measures into ``conditions/NAME`` (its progress in its own run.log)."""
    folder = out / "conditions" / c.name
    if watcher:
        watcher.phase(f"condition {c.name}: loading {c.model or study.model}")
    model = open_edited(c.model or study.model, study.backend, condition_edits(study, c, out))
    try:
        settings = RunSettings(
            model=model.info.spec,
            instruments=study.instruments,
            orders=study.orders,
            respondents=study.respondents,
            seed=study.seed,
        )
        run(Personality(settings), model, folder, watcher)
        if study.safety:
            safety = SafetySettings(
                model=model.info.spec,
                suites=study.safety.suites,
                limit=study.safety.limit,
                seed=study.seed,
                max_tokens=study.safety.max_tokens,
            )
            run(Safety(safety), model, folder, watcher)
        if study.arc_limit is not None:
            run(
                Capability(
                    CapabilitySettings(
                        arc_limit=study.arc_limit,
                        seed=study.seed,
                        perplexity_tokens=study.perplexity_tokens,
                    )
                ),
                model,
                folder,
                watcher,
            )
    finally:
        model.close()


def run_study(
    path: Path, out: Path, only_report: bool = False, watcher: Watcher | None = None
) -> StudySummary:
    study = load_study(path)
    claim(out)
    write_text(out / "study.yaml", path.read_text(encoding="utf-8"))
    if not only_report:
        if watcher:
            watcher.phase("building the study's steering vectors and adapters")
        prepare(study, out)
        for c in study.conditions:
            run_condition(study, c, out, watcher)
    data = summarize(study, out)
    write_json(out / STUDY_FILE, data.model_dump(mode="json"))
    write_text(out / "study.md", render_study(data))
    draw_dose_response(data, out / "dose_response.png")
    return data
