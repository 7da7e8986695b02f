"""Run a study: build its vectors and adapters once, then measure every condition durably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psyprobe.editing import build_vector, open_edited, save_vector
from psyprobe.editing.contrast import contrast
from psyprobe.editing.dpo import dpo_pairs, train_dpo, write_pairs
from psyprobe.engine import (
    Capability,
    Personality,
    Safety,
    personality_settings,
    run,
)
from psyprobe.engine.forecast import Forecast, forecast
from psyprobe.engine.measure import Measure, Watcher
from psyprobe.models import Model, open_model
from psyprobe.models.hf import hf_model_dir
from psyprobe.runs.directory import claim, write_json, write_text
from psyprobe.study.render import draw_dose_response, render_study
from psyprobe.study.schema import Condition, Study, condition_edits, load_study
from psyprobe.study.summary import STUDY_FILE, StudySummary, summarize


def prepare(study: Study, out: Path, watcher: Watcher | None = None) -> None:
    """Build the study's vectors and train its adapters, each only once."""
    for name, v in study.vectors.items():
        path = out / "vectors" / f"{name}.safetensors"
        if path.is_file():
            continue
        if watcher:
            watcher.phase(f"building the steering vector {name}")
        hf_model_dir(study.model)  # vectors need a transformers model: fail with one line
        hf: Any = open_model(study.model, study.backend)
        try:
            orders = study.asked().orders
            pairs = contrast(hf, v.dimension, v.poles, v.source, orders, study.seed)
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
        write_pairs(dpo_pairs(study.asked().orders, study.seed), pairs_file)
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
            watcher,
        )


def condition_measures(study: Study, model: Model) -> list[Measure[Any]]:
    """What every condition measures of its model: the personality settings come from
    ``personality_settings``, as on the command line and in the API (canonical instrument names,
    generate mode where the backend has no next-token probabilities)."""
    settings, _ = personality_settings(model, study.asked())
    measures: list[Measure[Any]] = [Personality(settings)]
    if (safety := study.safety_settings(model.info.spec)) is not None:
        measures.append(Safety(safety))
    if (capability := study.capability_settings()) is not None:
        measures.append(Capability(capability))
    return measures


def run_condition(study: Study, c: Condition, out: Path, watcher: Watcher | None = None) -> None:
    """One condition's measures into ``conditions/NAME`` (its progress in its own run.log)."""
    folder = out / "conditions" / c.name
    if watcher:
        watcher.phase(f"condition {c.name}: loading {c.model or study.model}")
    model = open_edited(c.model or study.model, study.backend, condition_edits(study, c, out))
    try:
        for measure in condition_measures(study, model):
            run(measure, model, folder, watcher)
    finally:
        model.close()


def forecast_study(path: Path) -> tuple[Study, dict[str, list[tuple[str, Forecast]]]]:
    """Each condition's forecast per measure (``--dry-run``), counted and timed on the
    condition's model unedited: the edits change what is answered, not how much is asked."""
    study = load_study(path)
    made: dict[str, list[tuple[str, Forecast]]] = {}
    by_model: dict[str, list[tuple[str, Forecast]]] = {}
    for c in study.conditions:
        spec = c.model or study.model
        if spec not in by_model:
            model = open_model(spec, study.backend, connect=False)
            try:
                by_model[spec] = [
                    (m.what, forecast(m, model)) for m in condition_measures(study, model)
                ]
            finally:
                model.close()
        made[c.name] = by_model[spec]
    return study, made


def run_study(
    path: Path, out: Path, only_report: bool = False, watcher: Watcher | None = None
) -> StudySummary:
    study = load_study(path)
    claim(out)
    write_text(out / "study.yaml", path.read_text(encoding="utf-8"))
    if not only_report:
        prepare(study, out, watcher)
        for c in study.conditions:
            run_condition(study, c, out, watcher)
    data = summarize(study, out)
    write_json(out / STUDY_FILE, data.model_dump(mode="json"))
    write_text(out / "study.md", render_study(data))
    draw_dose_response(data, out / "dose_response.png")
    return data
