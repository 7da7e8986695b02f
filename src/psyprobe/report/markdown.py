"""report.md: one table per instrument, every number read from results.json.

The method notes here are shared by report.md's and report.html's sections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psyprobe.prompting.conditions import FACTOR_TITLES, level_names
from psyprobe.scoring.diagnostics import KEY_FLAG

if TYPE_CHECKING:
    from psyprobe.report.results import RunResults
    from psyprobe.scoring.diagnostics import Decomposition, KeyCheck
    from psyprobe.scoring.score import DimensionScore, InstrumentScore
    from psyprobe.scoring.validity import Convergence, Correlation

METHOD_NOTE = (
    "Respondents: simulated people, persona × framing (× sample), as in PsyBORGS "
    "(Serapio-García et al. 2023); option orders are a nuisance balanced inside the population "
    "and their effect is removed from each answer. Score: mean over respondents of each item's "
    "keyed value, aggregated as the instrument says. SD and the bootstrap 95 % CI are over "
    "respondents, the CI drawing those of one persona together (past 70 each persona returns "
    "with another framing) and over items when there is one respondent. z = (score − norm "
    "mean) / norm SD; d and p: one-sample Cohen's d and t-test of the respondents' scores "
    "(for the t-test, each persona's mean) against the norm mean. Valid: "
    "share of answers that chose an option (logprob mode: mean probability on the option "
    "labels). α: Cronbach's alpha, ω: McDonald's omega (one-factor model), over respondents, "
    "their CIs bootstrapped over personas as the score's (α's studentized on log(1 − α)). "
    "Content: η² of the statement after option order and respondent are removed (permutation "
    "p); order: η² of the option order. Key: across respondents, agreement with forward- vs "
    "reverse-keyed items must correlate negatively. Validity: no_signal without content "
    "(η² < 0.05 or p ≥ 0.01) unless α ≥ 0.70 with consistent keys; weak for α < 0.70, "
    "inconsistent keys, reliability alone on a dimension without reversed items, a failed "
    "convergent r (< 0.50, Campbell & Fiske 1959), position bias > 0.3, an order effect "
    "η² ≥ 0.05, acquiescence beyond ±0.4, valid rate < 0.5 (< 0.2: no_signal) or one option "
    "order; the reasons are listed under each table."
)

SAFETY_NOTE = (
    "Each metric is named as its source defines it: TrustLLM's RtA (refusals over all answers), "
    "leakage RtA / TD / CD (per shot × type cell, macro-averaged), ConfAIde Pearson r and "
    "stereotype agreement (over all answers), as in TrustLLM's own evaluation code "
    "(trustllm_pkg/trustllm/task and utils/metrics.py); study B's toxic ratio and F1; psyprobe's "
    "own variants (attack success, compliance, leak rate, agreement over readable answers, "
    "balanced accuracy) beside them, never instead. Shares: Wilson 95 % CI; F1 and macro "
    "averages: percentile bootstrap over items (2,000 resamples, within cells for macro "
    "averages); Pearson r: Fisher-z CI. n: the answers the metric counts. Valid: answers the "
    "reader could read; a non-answer (a hedge, an echoed option list, a number that contradicts "
    "its label) is unreadable, never a guessed label. Judge: the same metric with an LLM judge's "
    "verdicts in place of the rule-based reading, and their agreement. Greedy decoding unless "
    "the run says otherwise."
)


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


WITHHELD = "withheld"  # a no_signal score's comparison with people: not a fact about a trait
NO_SIGNAL_NOTE = (
    "no_signal: these answers follow a response style (position, order, agreement), not the "
    "statement; the score is not a trait, and its comparison with human norms (z, d, p, band) "
    "is withheld."
)


def verdict_summary(verdicts: list[str]) -> str:
    """One sentence on the verdicts of a run: how many scores can be read as traits."""
    counts = {v: verdicts.count(v) for v in ("ok", "weak", "no_signal")}
    line = (
        f"validity: {counts['ok']} of {len(verdicts)} scores ok, {counts['weak']} weak, "
        f"{counts['no_signal']} no_signal."
    )
    if counts["no_signal"]:
        line += " " + NO_SIGNAL_NOTE
    if counts["weak"]:
        line += " weak: read with care; the reasons are listed in the report."
    return line


def all_verdicts(results: RunResults) -> list[str]:
    return [d.validity for inst in results.instruments.values() for d in inst.dimensions.values()]


def norm_statistics(d: DimensionScore) -> list[str]:
    """z, d and p against the human norm; withheld for a no_signal score, "no variance" where
    the respondents' scores do not differ (d and t would divide by zero)."""
    norm = d.norm
    if not norm:
        return ["–"] * 3
    if d.validity == "no_signal":
        return [WITHHELD] * 3
    if d.sd == 0:
        return [fmt(norm.z), "no variance", "no variance"]
    return [fmt(norm.z), fmt(norm.d), fmt_p(norm.p)]


def alpha_note(name: str, alpha: float | None) -> str | None:
    """Words for a negative α: it is not a low reliability but items that pull apart."""
    if alpha is None or alpha >= 0:
        return None
    return (
        f"α of {name} is {fmt(alpha)}: below zero, the items covary less than not at all — "
        "answers disagree across items more than chance would make them (often items answered "
        "against their keys, or nearly constant answers), so α says nothing about reliability here"
    )


def _dimension_row(name: str, d: DimensionScore, show_band: bool, show_type: bool) -> str:
    ci = d.ci95
    norm = d.norm
    cells = [
        name,
        fmt(d.score),
        f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "–",
        fmt(d.sd),
        f"{fmt(norm.mean, 2)} ({fmt(norm.sd, 2)})" if norm else "–",
        *norm_statistics(d),
        fmt(d.alpha),
        fmt(d.omega),
        str(d.n_items),
        fmt(d.valid_rate),
        d.validity,
    ]
    if show_band:
        cells.append(WITHHELD if d.validity == "no_signal" else d.band or "–")
    if show_type:
        poles = d.pole_percent or {}
        cells.append(d.letter or "–")
        cells.append(", ".join(f"{k} {v:.1f} %" for k, v in poles.items()) or "–")
    return "| " + " | ".join(cells) + " |"


def render_markdown(results: RunResults) -> str:
    model, settings = results.model, results.settings
    lines = [  # under report.md's title (report.page)
        f"- model: `{model.spec}` ({model.backend}), fingerprint `{model.fingerprint}`",
        *([f"- runtime: {model.runtime}"] if model.runtime else []),
        f"- psyprobe {results.psyprobe_version}; mode `{settings.mode}`, orders "
        f"`{settings.orders}`, respondents {settings.respondents} "
        f"(`{settings.balance}`), samples {settings.samples}, temperature "
        f"{settings.temperature}, seed {settings.seed}, template `{settings.template}`"
        + (
            f", varied: {', '.join(settings.vary)}"
            + (f" (context: {settings.context_items} items)" if "context" in settings.vary else "")
            if settings.vary
            else ""
        )
        + (
            f", max tokens {settings.max_tokens}, "
            + ("stopped once read" if settings.stop_when_read else "full answers")
            if settings.mode == "generate"
            else ""
        ),
        f"- {results.store.n_responses} stored responses in `{results.store.file}` "
        "(raw answers with prompts in `responses.jsonl`)",
        *(
            [
                f"- requests that got no answer: "
                f"{', '.join(f'{n}× {e}' for e, n in results.store.failures.items())}"
            ]
            if results.store.failures
            else []
        ),
        "",
        f"**{verdict_summary(all_verdicts(results))}**",
        "",
        METHOD_NOTE,
    ]
    for name, inst in results.instruments.items():
        dims = inst.dimensions
        show_band = any(d.band for d in dims.values())
        show_type = any(d.letter for d in dims.values())
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
        title = f"{name}" + (f" — {inst.full_name}" if inst.full_name else "")
        lines += [
            "",
            f"## {title}",
            "",
            f"{inst.n_prompts} prompts: {inst.n_respondents} respondent(s) behind "
            f"each α, {inst.n_orders} option order(s); aggregation "
            f"`{inst.aggregation}`; valid rate {fmt(inst.valid_rate)}; refusal rate "
            f"{fmt(inst.refusal_rate)}; position bias {fmt(inst.position_bias)}; "
            f"acquiescence {fmt(inst.acquiescence)}; {_decomposition(inst)}; "
            f"kappa between repeats {fmt(inst.kappa)}; {positions(inst)}"
            + (f"; type **{inst.type}**" if inst.type else ""),
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += [_dimension_row(dn, d, show_band, show_type) for dn, d in dims.items()]
        lines += ["", *_evidence_table(dims), *_factor_tables(inst)]
        notes = [
            f"- **{dn}** ({d.validity}): {'; '.join(d.validity_reasons)}."
            for dn, d in dims.items()
            if d.validity_reasons
        ]
        notes += [f"- {note}." for dn, d in dims.items() if (note := alpha_note(dn, d.alpha))]
        suspects = [
            f"{it.item} ({dn}, r = {fmt(it.item_total_r, 2)})"
            for dn, d in dims.items()
            for it in d.items
            if it.key_suspect
        ]
        if suspects:
            notes.append(
                "- Items whose answers run against their key (corrected item-total "
                f"r < {KEY_FLAG}): {', '.join(suspects)}."
            )
        lines += ["", *notes] if notes else []
    lines += _mtmm_table(results.mtmm)
    return "\n".join(lines) + "\n"


def _decomposition(inst: InstrumentScore) -> str:
    d: Decomposition | None = inst.decomposition
    if not d:
        return f"content sensitivity {fmt(inst.content_sensitivity)}"
    return (
        f"content sensitivity {fmt(d.content)} after option order (p {fmt_p(d.content_p)}), "
        f"order effect {fmt(d.order)} (p {fmt_p(d.order_p)})"
    )


def positions(inst: InstrumentScore) -> str:
    """Primacy and recency against chance, and whether the answers are more than positions."""
    text = (
        f"first option shown chosen {fmt(inst.primacy)}, last {fmt(inst.recency)} "
        f"(chance {fmt(inst.chance)})"
    )
    u = inst.uniformity
    if u is not None:
        text += (
            f"; against a position-only respondent p {fmt_p(u.p_position)}, against uniform "
            f"p {fmt_p(u.p_uniform)}" + ("" if u.balanced else " (orders not balanced)")
        )
    return text


FACTOR_HEADER = ["Factor", "Levels", "η² (p)", "× item η² beyond chance (p)"]
STABILITY_HEADER = [
    "Dimension", "Factor", "Score by level", "Spread", "SD", "Share of scale", "CI width"
]  # fmt: skip


def factor_rows(inst: InstrumentScore) -> tuple[list[list[str]], list[list[str]]]:
    """Each varied factor's effect on the answers (``FACTOR_HEADER``), and each score's
    stability across its levels against the score's CI width (``STABILITY_HEADER``)."""
    parts = inst.decomposition
    if parts is None or not parts.factors:
        return [], []
    effects = [
        [
            FACTOR_TITLES[name],
            ", ".join(level_names(name, e.levels)),
            f"{fmt(e.eta2)} ({fmt_p(e.p)})",
            f"{fmt(e.by_item)} ({fmt_p(e.by_item_p)})",
        ]
        for name, e in parts.factors.items()
    ]
    stable = []
    for dn, d in inst.dimensions.items():
        width = fmt(d.ci95[1] - d.ci95[0]) if d.ci95 else "–"
        for name, moved in d.stability.items():
            names = level_names(name, [lv.level for lv in moved.levels])
            by_level = ", ".join(
                f"{label} {fmt(lv.score, 2)}" for label, lv in zip(names, moved.levels, strict=True)
            )
            stable.append(
                [dn, FACTOR_TITLES[name], by_level, fmt(moved.spread), fmt(moved.sd),
                 fmt(moved.share_of_scale), width]
            )  # fmt: skip
    return effects, stable


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines: the delimiter row always as wide as the header."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def _factor_tables(inst: InstrumentScore) -> list[str]:
    effects, stable = factor_rows(inst)
    lines: list[str] = []
    for header, rows in ((FACTOR_HEADER, effects), (STABILITY_HEADER, stable)):
        if rows:
            lines += ["", *markdown_table(header, rows)]
    return lines


def _correlation(c: Correlation | KeyCheck | None) -> str:
    if c is None or c.r is None:
        return "–"
    ci = c.ci95
    return f"{c.r:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def _evidence_table(dims: dict[str, DimensionScore]) -> list[str]:
    """What each verdict was decided from, beside the scores."""
    rows = [
        "| Dimension | Respondents | α (population) | Order consistency | Key consistency "
        "| Convergent r | Criterion r |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, d in dims.items():
        key, conv = d.key_consistency, d.convergent
        rows.append(
            f"| {name} | {d.n_respondents} | {fmt(d.alpha)} | "
            f"{fmt(d.order_consistency)} | {key.status if key else '–'} "
            f"{_correlation(key) if key and key.r is not None else ''} | "
            f"{_correlation(conv.r) if conv else '–'} | {_correlation(d.criterion)} |"
        )
    rows += [
        "",
        "Order consistency is α over option orders: how much one order moves the items "
        "together — a habit's signature, never evidence of a trait. A negative α means the "
        "items disagree more than chance would make them.",
    ]
    return rows


def _mtmm_table(table: list[Convergence]) -> list[str]:
    if not table:
        return []
    lines = [
        "",
        "## Construct validity: the same traits by two instruments (MTMM)",
        "",
        "Convergent r: the same construct measured by both, over the same respondents (signed "
        "so that agreement is positive); it should reach 0.50 and exceed every discriminant r "
        "(different constructs) in its row and column (Campbell & Fiske 1959).",
        "",
        "| Construct | Measure A | Measure B | Convergent r [95% CI] | n | Max discriminant |r| "
        "| Holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in table:
        ok = "–" if c.ok is None else ("yes" if c.ok else "no")
        lines.append(
            f"| {c.trait} | {c.a} | {c.b} | {_correlation(c.r)} | {c.r.n} | "
            f"{fmt(c.discriminant_max, 2)} | {ok} |"
        )
    return lines
