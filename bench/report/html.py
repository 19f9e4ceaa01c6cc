"""report.html: the whole report as one self-contained page (no network: its style and script inline, its figures
inline SVG) to open in a browser or send to someone.

The main table with intervals (click a header to sort; the floor, ceiling and chance rows stay below the others),
the paper's claims with their verdicts coloured, the figures, and every run one click away: its configuration,
code fingerprint, data identity, provenance and training curves. Cells read as the markdown's (bench.report.tables),
so every mark is explained under the table it appears in.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path

from bench.report import claims as paper_claims
from bench.report import tables
from bench.report.frames import Report, metric_name
from cpep.files import write_text_atomically

VERDICTS = {"reproduced": "ok", "not reproduced": "bad", "inconclusive": "unsure"}
CLAIM_DETAILS = ("kind", "estimate", "low", "high", "unit")  # claims.csv's numbers behind the shown columns

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:12px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.4em 0}
th,td{padding:3px 8px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal}
th.sortable{cursor:pointer;user-select:none}th.sortable::after{content:" \\21C5";color:#999}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.paper{color:#666}tbody.reference td{background:#f6f6f6;font-style:italic}
.tag{font-size:.75em;border-radius:3px;padding:0 4px;margin-left:4px;background:#ddd;font-style:normal}
.ok{background:#d8f0d8}.bad{background:#f6d5d5}.unsure{background:#f8efc8}
ul.notes{color:#555;font-size:.9em;padding-left:1.2em}figure{margin:1em 0}figure svg{max-width:100%;height:auto}
details{margin:.3em 0;border:1px solid #e4e4e4;border-radius:4px;padding:.2em .6em}summary{cursor:pointer}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:.85em}.curve{margin:.3em 1em .3em 0}
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("th.sortable");
  heads.forEach(function (th) {
    th.addEventListener("click", function () {
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var down = th.getAttribute("aria-sort") !== "descending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[index], value = cell.getAttribute("data-sort");
        return value === null ? cell.textContent : parseFloat(value);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") {
          if (isNaN(x)) return 1;
          if (isNaN(y)) return -1;
          return down ? y - x : x - y;
        }
        return down ? String(y).localeCompare(String(x)) : String(x).localeCompare(String(y));
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _cell(text: str, sort: float | str | None = None, cls: str = "") -> str:
    attrs = (f' data-sort="{"NaN" if isinstance(sort, float) and math.isnan(sort) else escape(str(sort))}"'
             if sort is not None else "") + (f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{escape(text)}</td>"


def _notes(notes: list[str]) -> str:
    return "<ul class=notes>" + "".join(f"<li>{escape(n)}</li>" for n in dict.fromkeys(notes)) + "</ul>"


def bound_tag(label: str) -> str:
    word = label.split(":")[0].strip().lower()
    return word if word in ("floor", "ceiling") else "reference"


def main_table(report: Report) -> str:
    """Per variant its estimate and interval per metric (and the paper's number beside it where it applies);
    floor, ceiling and chance in a reference block under the others."""
    published = report.published
    head = "<th class=sortable>method</th><th class=sortable>n</th>" + "".join(
        f"<th class=sortable>{escape(metric_name(m))}</th>" + ("<th>paper</th>" if published else "")
        for m in report.metrics)
    body, reference = [], []
    summary = report.summary.set_index(["variant", "metric"])
    for r in tables.main_rows(report):
        v = r["variant"]
        tag = f"<span class=tag>{bound_tag(r['label'])}</span>" if r["bound"] else ""
        cells = [f'<td data-sort="{escape(r["label"])}"><a href="#runs-{escape(v)}">{escape(r["label"])}</a>{tag}'
                 f"</td>", _cell(r["seeds"], len(report.done[v]))]
        for m in report.metrics:
            ours, paper = r["cells"][m]
            cells.append(_cell(ours, float(summary.loc[(v, m), "mean"])))
            if published:
                cells.append(_cell(paper, cls="paper"))
        (reference if r["bound"] else body).append("<tr>" + "".join(cells) + "</tr>")
    if report.chance:
        chance = [_cell(f"{report.chance[m]:.3f}" if m in report.chance else "") + ("<td></td>" if published else "")
                  for m in report.metrics]
        reference.append('<tr class=chance><td>chance (guessing)<span class=tag>chance</span></td><td></td>'
                         + "".join(chance) + "</tr>")
    ref = f"<tbody class=reference>{''.join(reference)}</tbody>" if reference else ""
    return (f'<div class=scroll><table class=sortable id=main><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody>{ref}</table></div>")


def claims_table(report: Report) -> str:
    """The claims with every column claims.csv shows a reader (verdict columns coloured)."""
    found = report.claims
    if found.empty:
        return "<p>No claim of the paper can be checked on these variants.</p>"
    columns = [c for c in found.columns if c not in CLAIM_DETAILS]
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    rows = []
    for _, r in found.iterrows():
        cells = []
        for c in columns:
            value = "" if r[c] is None or (isinstance(r[c], float) and math.isnan(r[c])) else str(r[c])
            cells.append(_cell(value, cls=VERDICTS.get(value, "")))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class=scroll><table id=claims><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table></div>" + _notes(paper_claims.notes(found, paper_claims.settings_of(report))))


def inline_svg(path: Path, prefix: str) -> str:
    """A figure's SVG as an element of the page, its ids prefixed so that several figures never share one."""
    text = path.read_text()
    text = text[text.index("<svg"):]  # without the XML declaration and doctype
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    if ids:
        pattern = re.compile(r'(\bid="|#)(' + "|".join(map(re.escape, sorted(ids, key=len, reverse=True))) + r')\b')
        text = pattern.sub(lambda m: f"{m[1]}{prefix}-{m[2]}", text)
    return text


def figures(files: list[Path]) -> str:
    svgs = [p for p in files if p.suffix == ".svg"]
    if not svgs:
        return "<p>No figure: no result to draw.</p>"
    return "".join(f'<figure id="figure-{escape(p.stem)}">{inline_svg(p, f"f{i}")}'
                   f"<figcaption>{escape(p.stem)} (also {escape(p.with_suffix('.png').name)})</figcaption></figure>"
                   for i, p in enumerate(svgs))


def curve(history: list[dict], key: str, title: str) -> str:
    """A training curve as a small SVG: `key` per epoch, its range written beside it."""
    points = [(h["epoch"], h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    if len(points) < 2:
        return ""
    (x0, x1), (y0, y1) = ((min(p[i] for p in points), max(p[i] for p in points)) for i in (0, 1))
    w, h = 220, 70
    line = " ".join(f"{(x - x0) / ((x1 - x0) or 1) * w:.1f},{h - (y - y0) / ((y1 - y0) or 1) * h:.1f}"
                    for x, y in points)
    return (f'<svg class=curve width="{w + 90}" height="{h + 24}" viewBox="-2 -14 {w + 90} {h + 24}" role="img" '
            f'aria-label="{escape(title)}"><text x="0" y="-3" font-size="11">{escape(title)}</text>'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>'
            f'<rect x="0" y="0" width="{w}" height="{h}" fill="none" stroke="#ccc"/>'
            f'<text x="{w + 4}" y="9" font-size="10">{y1:.4g}</text><text x="{w + 4}" y="{h}" font-size="10">'
            f'{y0:.4g}</text><text x="0" y="{h + 10}" font-size="10">epoch {x0}</text>'
            f'<text x="{w}" y="{h + 10}" font-size="10" text-anchor="end">{x1}</text></svg>')


def _json(value) -> str:
    return escape(json.dumps(value, indent=1, sort_keys=True, default=str))


def run_details(record: dict) -> str:
    """One run, one click away: status, code fingerprint, data identity, provenance, configuration, curves."""
    stages = record.get("stages") or []
    curves = "".join(curve(s["history"], key, f"{s['kind']} {key}") for s in stages if s.get("history")
                     for key in ("loss", "temperature"))
    codes = ", ".join(f"{s['kind']} {s.get('code', '')}" for s in stages)
    summary = f"{record['variant']} seed {record['seed']}: {record['status']}" + (
        f" ({record['error']})" if record.get("error") else "")
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in (record.get("metrics") or {}).items() if v is not None)
    return (f"<details id=\"run-{escape(record['variant'])}-{record['seed']}\"><summary>{escape(summary)}</summary>"
            f"<p>{escape(metrics) or 'no metrics'}</p>"
            f"<p>code fingerprint {escape(str(record.get('code')))} (stages: {escape(codes)}); run key "
            f"{escape(str(record.get('run_key')))}</p>"
            f"<p>data {escape(record['dataset'])}-{escape(str(record.get('data_key')))} read from "
            f"{escape(record.get('data_root') or 'generated data')}</p>"
            f"{curves and '<div>' + curves + '</div>'}"
            f"<details><summary>data identity</summary><pre>{_json(record.get('data_identity'))}</pre></details>"
            f"<details><summary>configuration</summary><pre>{_json(record.get('config'))}</pre></details>"
            f"<details><summary>provenance</summary><pre>{_json(record.get('provenance'))}</pre></details>"
            "</details>")


def runs(report: Report, records: list[dict]) -> str:
    by_variant: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        by_variant.setdefault(r["variant"], []).append(r)
    parts = []
    for v in report.variants:
        found = by_variant.get(v, [])
        parts.append(f"<h3 id=\"runs-{escape(v)}\">{escape(report.labels[v])}</h3>"
                     + ("".join(map(run_details, found)) or "<p>No record.</p>"))
    return "".join(parts)


def incomplete(report: Report) -> str:
    if not len(report.incomplete):
        return "<p>None: every variant has a result for every seed asked.</p>"
    rows = "".join("<tr>" + "".join(_cell(str(v)) for v in row) + "</tr>"
                   for row in report.incomplete.itertuples(index=False))
    return ("<div class=scroll><table id=incomplete><thead><tr><th>variant</th><th>seeds</th><th>status</th>"
            f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table></div>")


def page(report: Report, records: list[dict], figure_files: list[Path]) -> str:
    title = f"{report.suite}: balanced accuracy on {report.dataset} data"
    chance = ", ".join(f"{level:.3f} {name}" for name, level in report.chance_by_class_set.items())
    intro = (f"<p>Data: {escape(report.data)}. {len(report.seeds)} seed(s) asked: "
             f"{escape(', '.join(map(str, report.seeds)))}. Chance (balanced accuracy of guessing): "
             f"{escape(chance) or 'unknown'}.</p>")
    sections = [
        ("Main table", main_table(report) + _notes(([] if report.published else [tables.unpublished_note(report)])
                                                   + tables.main_notes(report))),
        ("The paper's claims", claims_table(report)),
        ("Figures", figures(figure_files)),
        ("Runs without a result", incomplete(report)),
        ("Runs", "<p>Each run's configuration, code fingerprint, data identity, provenance and training curves: "
                 "click to open.</p>" + runs(report, records)),
        ("Notes", _notes(report.notes + tables.footer(report))),
    ]
    body = "".join(f"<h2>{escape(name)}</h2>{content}" for name, content in sections)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f'content="width=device-width,initial-scale=1"><title>{escape(title)}</title><style>{STYLE}</style>'
            f"</head><body><h1>{escape(title)}</h1>{intro}{body}<script>{SCRIPT}</script></body></html>\n")


def write(report: Report, records: list[dict], out: Path, written: list[Path]) -> Path:
    """Write report.html into `out` from the report, its records and the figure files written beside it."""
    path = out / "report.html"
    write_text_atomically(path, page(report, records, [p for p in written if p.parent == out]))
    return path
