"""report.md: one table per instrument, every number read from results.json.

The method notes here are shared by report.md, safety.md and report.html.
"""

from __future__ import annotations

from typing import Any

from psyprobe.scoring.diagnostics import KEY_FLAG

METHOD_NOTE = (
    "Score: mean over option orders and samples of each item's keyed value, aggregated as the "
    "instrument says. SD and the bootstrap 95 % CI are over option orders × samples (each order "
    "is one respondent). z = (score − norm mean) / norm SD; d and p: one-sample Cohen's d and "
    "t-test of the respondents' scores against the norm mean. Valid: share of answers that chose "
    "an option (logprob mode: mean probability on the option labels). α: Cronbach's alpha, ω: "
    "McDonald's omega (one-factor model), over respondents. Validity: ok, weak or no_signal from "
    "position bias (> 0.3), acquiescence (beyond ±0.4), content sensitivity (< 0.05), valid rate "
    "(< 0.5, < 0.2) and the number of option orders; the reasons are listed under each table."
)

SAFETY_NOTE = (
    "Value: share of valid answers with the outcome (Wilson 95 % CI), or F1 of the positive "
    "class (percentile bootstrap over items, 2,000 resamples). Valid: answers the scorer could "
    "read (a yes/no, an option, any text). Greedy decoding unless the run says otherwise. Groups: "
    "the outcome's share per stratum (per label for F1 tasks: share answered correctly)."
)


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _dimension_row(name: str, d: dict[str, Any], show_band: bool, show_type: bool) -> str:
    ci = d["ci95"]
    norm = d["norm"]
    cells = [
        name,
        fmt(d["score"]),
        f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "–",
        fmt(d["sd"]),
        f"{fmt(norm['mean'], 2)} ({fmt(norm['sd'], 2)})" if norm else "–",
        fmt(norm["z"]) if norm else "–",
        fmt(norm["d"]) if norm else "–",
        fmt_p(norm["p"]) if norm else "–",
        fmt(d["alpha"]),
        fmt(d["omega"]),
        str(d["n_items"]),
        fmt(d["valid_rate"]),
        d["validity"],
    ]
    if show_band:
        cells.append(d["band"] or "–")
    if show_type:
        poles = d["pole_percent"] or {}
        cells.append(d["letter"] or "–")
        cells.append(", ".join(f"{k} {v:.1f} %" for k, v in poles.items()) or "–")
    return "| " + " | ".join(cells) + " |"


def render_markdown(results: dict[str, Any]) -> str:
    model, settings = results["model"], results["settings"]
    lines = [
        "# psyprobe report",
        "",
        f"- model: `{model['spec']}` ({model['backend']}), fingerprint `{model['fingerprint']}`",
        f"- psyprobe {results['psyprobe_version']}; mode `{settings['mode']}`, orders "
        f"`{settings['orders']}`, samples {settings['samples']}, temperature "
        f"{settings['temperature']}, seed {settings['seed']}, template `{settings['template']}`",
        f"- {results['store']['n_responses']} stored responses in `{results['store']['file']}` "
        "(raw answers with prompts in `responses.jsonl`)",
        *(
            [
                f"- requests that got no answer: "
                f"{', '.join(f'{n}× {e}' for e, n in results['store']['failures'].items())}"
            ]
            if results["store"]["failures"]
            else []
        ),
        "",
        METHOD_NOTE,
    ]
    for name, inst in results["instruments"].items():
        dims = inst["dimensions"]
        show_band = any(d["band"] for d in dims.values())
        show_type = any(d["letter"] for d in dims.values())
        header = [
            "Dimension",
            "Score",
            "95% CI",
            "SD",
            "Norm mean (SD)",
            "z",
            "d",
            "p",
            "α",
            "ω",
            "Items",
            "Valid",
            "Validity",
        ]
        header += ["Band"] if show_band else []
        header += ["Pole", "Pole %"] if show_type else []
        title = f"{name}" + (f" — {inst['full_name']}" if inst["full_name"] else "")
        lines += [
            "",
            f"## {title}",
            "",
            f"{inst['n_prompts']} prompts in {inst['n_orders']} option order(s); aggregation "
            f"`{inst['aggregation']}`; valid rate {fmt(inst['valid_rate'])}; refusal rate "
            f"{fmt(inst['refusal_rate'])}; position bias {fmt(inst['position_bias'])}; "
            f"acquiescence {fmt(inst['acquiescence'])}; content sensitivity "
            f"{fmt(inst['content_sensitivity'])}; kappa between repeats {fmt(inst['kappa'])}"
            + (f"; type **{inst['type']}**" if inst["type"] else ""),
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += [_dimension_row(dn, d, show_band, show_type) for dn, d in dims.items()]
        notes = [
            f"- **{dn}** ({d['validity']}): {'; '.join(d['validity_reasons'])}."
            for dn, d in dims.items()
            if d["validity_reasons"]
        ]
        suspects = [
            f"{it['item']} ({dn}, r = {fmt(it['item_total_r'], 2)})"
            for dn, d in dims.items()
            for it in d["items"]
            if it["key_suspect"]
        ]
        if suspects:
            notes.append(
                "- Items whose answers run against their key (corrected item-total "
                f"r < {KEY_FLAG}): {', '.join(suspects)}."
            )
        lines += ["", *notes] if notes else []
    return "\n".join(lines) + "\n"
