"""The measurement itself, tested against simulated respondents whose true profile is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import psyprobe, write_json, write_jsonl
from psyprobe.instruments import builtin_paths, load_instrument, read_instrument
from psyprobe.models import open_model
from psyprobe.models.sim import SimModel, expected_value
from psyprobe.runs import ResponseStore, RunSettings, collect
from psyprobe.runs.runner import resolve_instruments
from psyprobe.scoring import InstrumentScore, score_instrument

PROFILE = {"Machiavellianism": 2.2, "Narcissism": 3.6, "Psychopathy": 1.8}


def spec(**style: float) -> str:
    return "sim:" + ",".join(f"{k}={v}" for k, v in {**PROFILE, **style}.items())


def measure(
    tmp_path: Path,
    model_spec: str,
    orders: str,
    *,
    mode: str = "generate",
    samples: int = 3,
    seed: int = 0,
    instrument: str = "sd3",
) -> InstrumentScore:
    """One simulated administration, through the real runner and store, scored."""
    settings = RunSettings(
        model=model_spec,
        instruments=(instrument,),
        orders=orders,
        mode=mode,
        samples=samples,
        seed=seed,
        retries=0,
    )  # type: ignore[arg-type]
    model = open_model(model_spec)
    instruments = resolve_instruments(settings.instruments)
    ((name, inst),) = instruments.items()
    store_path = tmp_path / f"{abs(hash((model_spec, orders, mode, samples, seed)))}.sqlite"
    with ResponseStore(store_path) as store:
        collect(settings, model, instruments, store)
        records = list(store.records())
    return score_instrument(name, inst, records, seed=seed, omega_resamples=0)


def true_scores(model_spec: str) -> dict[str, float]:
    """What a perfect measurement of the simulated respondent would give (no response style)."""
    sim = SimModel(model_spec)
    inst = load_instrument("sd3")
    dims = {d.id: d for d in inst.dimensions()}
    by_dim: dict[str, list[float]] = {d: [] for d in dims}
    for q in inst.questions():
        dim = dims[q.dimension]
        values = np.array([o.value for o in q.options])
        target = dim.keyed(sim.true_level(q, inst), q.reverse)
        probs = expected_value(values, target, sim.style["noise"])
        by_dim[q.dimension].append(float(probs @ [dim.keyed(v, q.reverse) for v in values]))
    return {d: float(np.mean(v)) for d, v in by_dim.items()}


def test_latin_design_recovers_the_true_profile_within_its_ci(tmp_path: Path) -> None:
    model_spec = spec(noise=0.8)
    truth = true_scores(model_spec)
    covered = {name: 0 for name in truth}
    for seed in range(50):
        result = measure(tmp_path, model_spec, "latin", seed=seed)
        for name, d in result.dimensions.items():
            covered[name] += d.ci95 is not None and d.ci95[0] <= truth[name] <= d.ci95[1]
    # A calibrated 95 % CI covers in 47.5 of 50 runs on average (± 1.5): pooled over the three
    # dimensions at least 90 %, and no dimension far below.
    assert sum(covered.values()) >= 0.9 * 150, covered
    assert min(covered.values()) >= 0.85 * 50, covered


def test_fixed_order_with_position_bias_is_not_ok(tmp_path: Path) -> None:
    biased = spec(noise=0.8, position_bias=3)
    fixed = measure(tmp_path, biased, "fixed", mode="logprob", samples=1)
    assert fixed.position_bias is not None and fixed.position_bias > 0.3
    assert all(d.validity != "ok" for d in fixed.dimensions.values())
    # the scores are off: option 1 ("Disagree") wins whatever the statement, which drags the
    # all-forward-keyed Machiavellianism down
    truth = true_scores(biased)
    mach = fixed.dimensions["Machiavellianism"].score
    assert mach is not None and mach < truth["Machiavellianism"] - 0.5
    # counterbalanced, the same respondent is still flagged, in words, for its position habit
    latin = measure(tmp_path, biased, "latin", mode="logprob", samples=1)
    for d in latin.dimensions.values():
        assert d.validity != "ok"
        assert any("option position" in reason for reason in d.validity_reasons)
    clean = measure(tmp_path, spec(noise=0.8), "latin", mode="logprob", samples=1)
    assert clean.position_bias is not None and clean.position_bias < 0.05
    assert all(d.validity == "ok" for d in clean.dimensions.values())


def test_alpha_is_high_for_a_consistent_respondent_and_near_zero_for_noise(
    tmp_path: Path,
) -> None:
    consistent = measure(tmp_path, spec(noise=0.4, spread=1.0), "latin", samples=3)
    for d in consistent.dimensions.values():
        assert d.alpha is not None and d.alpha > 0.8
        assert d.omega is not None and d.omega > 0.8
    noise = measure(tmp_path, spec(noise=3.0, spread=0.0), "latin", samples=5)
    for d in noise.dimensions.values():
        # near zero: the interval includes 0 and excludes the consistent respondent's level
        assert d.alpha_ci95 is not None and d.alpha_ci95[0] <= 0.0 <= d.alpha_ci95[1]
        assert d.alpha is not None and d.alpha < 0.5


def test_a_miskeyed_item_is_flagged(tmp_path: Path) -> None:
    raw = json.loads(builtin_paths()["sd3"].read_text())
    for item in raw["items"]:
        if item["code"] == "N2":  # "I hate being the center of attention": reversed in truth
            item["reverse"] = False
    wrong = write_json(tmp_path / "sd3-wrong-key.json", raw)
    # the simulated person answers by the true key; we score with the wrong one
    result_path = tmp_path / "run"
    psyprobe(
        "run",
        "--model",
        spec(noise=0.4, spread=1.0),
        "--instrument",
        str(wrong),
        "--orders",
        "latin",
        "--mode",
        "generate",
        "--samples",
        "3",
        "--out",
        str(result_path),
    )
    results = json.loads((result_path / "results.json").read_text())
    narcissism = results["instruments"]["sd3"]["dimensions"]["Narcissism"]
    flagged = {it["item"] for it in narcissism["items"] if it["key_suspect"]}
    assert flagged == {"11"}
    assert "11 (Narcissism" in (result_path / "report.md").read_text()
    assert read_instrument(wrong).questions()[10].reverse is False


def test_kappa_between_repeats(tmp_path: Path) -> None:
    steady = measure(tmp_path, spec(noise=0.25), "latin", samples=2)
    shaky = measure(tmp_path, spec(noise=3.0), "latin", samples=2)
    assert steady.kappa is not None and steady.kappa > 0.6
    assert shaky.kappa is not None and abs(shaky.kappa) < 0.2


def test_kappa_for_repeated_forced_choice(tmp_path: Path, shared_data: Path) -> None:
    mbti = shared_data / "instruments-restricted" / "mbti-m.json"
    items = json.loads(mbti.read_text())["items"]
    # two administrations that agree on every item but the first five (choices alternate between
    # the options, so agreement is not simply the prevalence of one option)
    rows = []
    for repeat in range(2):
        for n, it in enumerate(items):
            pick = it["options"][(n % 2) ^ (repeat and n < 5)]["label"]
            rows.append({"instrument": "mbti-m", "item": it["id"], "response": pick})
    replay = write_jsonl(tmp_path / "mbti.jsonl", rows)
    psyprobe(
        "run",
        "--model",
        f"replay:{replay}",
        "--instrument",
        str(mbti),
        "--out",
        str(tmp_path / "run"),
    )
    inst = json.loads((tmp_path / "run" / "results.json").read_text())["instruments"]["mbtim"]
    assert 0.8 < inst["kappa"] < 1.0


def test_a_rerun_with_other_settings_is_refused_and_keeps_the_run(tmp_path: Path) -> None:
    args = ["run", "--model", spec(), "--instrument", "sd3", "--orders", "fixed"]
    psyprobe(*args, "--out", str(tmp_path))
    kept = (tmp_path / "results.json").read_bytes()
    proc = psyprobe(*args, "--seed", "1", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "other settings (seed)" in proc.stderr
    assert (tmp_path / "results.json").read_bytes() == kept
