"""The report's tables as LaTeX (booktabs), from the cells of bench.report.tables: each a complete table environment whose
caption explains every mark its cells use, to paste into a paper (needs \\usepackage{booktabs})."""

from __future__ import annotations

import re

from bench.report import claims as paper_claims
from bench.report import tables
from bench.report.frames import Report, metric_name

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$", "{": r"\{",
            "}": r"\}", "^": r"\^{}", "|": r"$|$", "~": r"$\sim$", "±": r"$\pm$", "×": r"$\times$", "†": r"\dag{}",
            # the default OT1 font encoding prints < and > as inverted exclamation and question marks
            ">=": r"$\geq$", "<=": r"$\leq$", ">": r"$>$", "<": r"$<$", "--": "-{}-"}
_ESCAPES |= {sup: rf"\textsuperscript{{{digit}}}" for digit, sup in zip("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")}
_SPECIAL = re.compile("|".join(map(re.escape, sorted(_ESCAPES, key=len, reverse=True))))


def tex(text: str) -> str:
    """Plain text as LaTeX text: its special characters escaped, its marks as LaTeX commands."""
    return _SPECIAL.sub(lambda found: _ESCAPES[found[0]], text)


def _caption(title: str, notes: list[str]) -> str:
    return " ".join([tex(title)] + [tex(n) for n in notes])


def _unpublished(report: Report) -> list[str]:
    return [] if report.published else [tables.unpublished_note(report)]


def _table(columns: str, header: list[str], rows: list[list[str]], caption: str, label: str,
           group: str = "", rule: int | None = None, size: str = r"\small") -> str:
    """`header` is LaTeX already; `rows` and `caption` are escaped here (the caption by its caller)."""
    lines = [r"\begin{table}[t]", r"\centering", size, rf"\begin{{tabular}}{{{columns}}}", r"\toprule"]
    if group:
        lines.append(group)
    lines += [" & ".join(header) + r" \\", r"\midrule"]
    for i, row in enumerate(rows):
        if i == rule:
            lines.append(r"\midrule")
        line = " & ".join(tex(c) for c in row) + r" \\"
        # a row that opens with "[" would be read as the optional argument of the \\ or \midrule before it
        lines.append("{}" + line if line.startswith("[") else line)
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _metric_header(report: Report, first: str, count: str) -> list[str]:
    return [first, count] + [tex(metric_name(m)) for m in report.metrics]


def table(report: Report) -> str:
    """table.tex: per variant and metric, our mean and interval beside the paper's number."""
    k = len(report.metrics)
    names = [tex(metric_name(m)) for m in report.metrics]
    group = (" & & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{name}}}" for name in names) + r" \\"
             + "\n" + " ".join(rf"\cmidrule(lr){{{3 + 2 * i}-{4 + 2 * i}}}" for i in range(k)))
    main = tables.main_rows(report)
    caption = _caption(f"Balanced accuracy, {report.suite} suite.", _unpublished(report) + tables.main_notes(report))
    if not report.published:
        rows = [[r["label"], r["seeds"]] + [r["cells"][m][0] for m in report.metrics] for r in main]
        return _table("l" + "r" + "r" * k, _metric_header(report, "Method", "$n$"), rows, caption,
                      f"tab:{report.suite}", rule=tables.rule_before(main))
    header = ["Method", "$n$"] + ["ours", "paper"] * k
    rows = [[r["label"], r["seeds"]] + [c for m in report.metrics for c in r["cells"][m]] for r in main]
    return _table("l" + "r" + "rr" * k, header, rows, caption, f"tab:{report.suite}", group,
                  tables.rule_before(main))


def _per_metric(report: Report, found: list[dict], count: str, cell, title: str, notes: list[str],
                label: str) -> str:
    """A row per entry of `found` (tables' row dicts): label, its `count` column, cell(row, metric) per metric."""
    rows = [[r["label"], r[count]] + [cell(r, m) for m in report.metrics] for r in found]
    header = _metric_header(report, "Method", "$n$" if count == "seeds" else count)
    return _table("lr" + "r" * len(report.metrics), header, rows, _caption(f"{title}, {report.suite} suite.", notes),
                  f"tab:{report.suite}-{label}", rule=tables.rule_before(found))


def iqm(report: Report) -> str:
    """iqm.tex: per variant and metric, the IQM of each seed's held-out users averaged over seeds, and its interval."""
    return _per_metric(report, tables.main_rows(report), "seeds", lambda r, m: r["iqm"][m],
                       "Interquartile mean of balanced accuracy", tables.iqm_notes(report), "iqm")


def differences(report: Report) -> str:
    """differences.tex: each variant minus CPEP, paired on the seeds (and users) both have."""
    return _per_metric(report, tables.difference_rows(report), "pairs", lambda r, m: r["cells"][m][0],
                       "Paired differences against CPEP", tables.difference_notes(report), "differences")


def improvement(report: Report) -> str:
    """improvement.tex: P(variant > CPEP) and its interval."""
    return _per_metric(report, tables.improvement_rows(report), "strata", lambda r, m: r["cells"][m][0],
                       "Probability of improvement over CPEP", tables.improvement_notes(report), "improvement")


def claims(report: Report) -> str:
    """claims.tex: the paper's claims, each with our estimate, its interval, its p-value, the verdict before and
    after Holm's adjustment, the size check and what the run can detect."""
    shown = paper_claims.SHOWN
    rows = [[str(r[c]) for c in shown] for _, r in report.claims.iterrows()]
    caption = _caption(f"The papers' claims checked on the {report.suite} suite.",
                       _unpublished(report) + paper_claims.notes(report.claims, paper_claims.settings_of(report)))
    columns = r"p{0.2\linewidth}" + "l" * 9 + r"p{0.14\linewidth}"
    return _table(columns, [tex(c[0].upper() + c[1:]) for c in shown.values()], rows, caption,
                  f"tab:{report.suite}-claims", size=r"\scriptsize")
