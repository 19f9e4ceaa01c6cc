"""The report's LaTeX files: every mark in a table's cells is explained in that table's caption, and the files
compile (where pdflatex is installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from test_report import fixture_records, fixture_suite  # noqa: F401 (a fixture)
from test_stats import with_users

from bench.report import build as report
from bench.report import latex, tables, write

TEX_FILES = ("table.tex", "iqm.tex", "differences.tex", "improvement.tex", "claims.tex")
# a mark as it is found in a cell -> what its explanation in the caption starts with
MARKS = {
    "not applicable": (r"-\\textsuperscript\{(\d)\}", lambda m: rf"-\textsuperscript{{{m[1]}}} not applicable:"),
    "stale": (r"\\dag\{\}", lambda m: r"\dag{}: "),
    "read off a figure": (r"\$\\sim\$", lambda m: r"$\sim$ marks"),
    "significant after Holm": (r" \*$", lambda m: "*: p $<$ 0.05 after Holm"),
    "significant unadjusted": (r" \(\*\)$", lambda m: "(*): p $<$ 0.05 unadjusted only"),
    "fewer seeds": (r"^(\d+) of (\d+)$", lambda m: f"'k of {m[2]}':"),
    "one seed": (r"\(n=1\)", lambda m: "(n=1):"),
    "a metric on fewer seeds": (r"\(n=([2-9]|\d\d+)\)", lambda m: "(n=k): k seeds; after an interval"),
    "no paper number": (r"^-( \(|$)", lambda m: "paper -:"),
    "another paper": (r"\(\d\.\d{3}\)$", lambda m: "paper (x):"),
}


@pytest.fixture
def written(fixture_suite, tmp_path):  # noqa: F811 (the fixture)
    """A report whose tables hold every mark, written as LaTeX: the fixture records (not-applicable
    metrics, fewer seeds, one seed, approximate and other papers' numbers) with a stale run, a metric on two of
    CPEP's four seeds, and per-user scores for CPEP and the frozen ablation."""
    records = fixture_records(fixture_suite)
    for r in records:
        if r["status"] != "done":
            continue
        if (r["variant"], r["seed"]) == ("cpep", 1):
            r["stale"] = True
        if r["variant"] == "cpep" and r["seed"] < 2:
            r["metrics"]["a_metric"] = 0.2 + 0.1 * r["seed"]
        if r["variant"] in ("cpep", "frozen_emg") and r["seed"] < 3:
            lp = r["metrics"]["lp_id"]
            with_users(r, {"lp_id": [lp - 0.02, lp - 0.01, lp + 0.01, lp + 0.02]})
    rep = report.build(fixture_suite, records, "t", reuse_stale=True)
    out = tmp_path / "tex"
    write.write_tables(rep, out, ("tex",))
    return rep, out


def cells_and_caption(text: str) -> tuple[list[str], str]:
    lines = text.splitlines()
    body = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    cells = [c.strip() for line in body if line != r"\midrule" for c in line.removesuffix(r" \\").split(" & ")]
    (caption,) = [line for line in lines if line.startswith(r"\caption{")]
    return cells, caption


def test_every_mark_in_a_latex_table_is_explained_in_its_caption(written):
    rep, out = written
    assert sorted(p.name for p in out.iterdir()) == sorted(TEX_FILES)  # the tex format writes every .tex file
    seen = set()
    for name in TEX_FILES:
        text = (out / name).read_text()
        assert text.isascii(), name  # pdflatex reads no character that LaTeX does not set up by default
        # a line opening with "[" would be read as the optional argument of the \\ or \midrule above it
        assert not [line for line in text.splitlines() if line.startswith("[")], name
        cells, caption = cells_and_caption(text)
        for kind, (pattern, explanation) in MARKS.items():
            for cell in cells:
                for found in re.finditer(pattern, cell):
                    seen.add(kind)
                    assert explanation(found) in caption, f"{name}: {cell!r} ({kind}) unexplained"
    assert seen == set(MARKS)  # the report holds every mark
    assert "bold" not in (out / "improvement.tex").read_text()  # no wording about the terminal
    # the differences' interval is worded as in the markdown
    markdown = tables.markdown(rep)
    sentence = next(n for n in tables.difference_notes(rep) if "each seed's mean difference" in n)
    assert f"- {sentence}" in markdown and latex.tex(sentence) in (out / "differences.tex").read_text()
    # the IQM notes moved from table.tex's caption to iqm.tex's
    iqm_note = latex.tex("IQM: the interquartile mean")
    assert iqm_note in (out / "iqm.tex").read_text() and iqm_note not in (out / "table.tex").read_text()


def test_the_latex_files_compile(written, tmp_path):
    """Skipped where pdflatex is not installed, except in CI (CPEP_REQUIRE_LATEX=1, .ci/run installs it), where that
    is a failure."""
    if shutil.which("pdflatex") is None:
        message = "pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)"
        if os.environ.get("CPEP_REQUIRE_LATEX") == "1":
            pytest.fail(f"CPEP_REQUIRE_LATEX=1 but {message}")
        pytest.skip(message)
    _, out = written
    document = tmp_path / "document.tex"
    document.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                        + "".join(f"\\input{{{out / name}}}\n" for name in TEX_FILES) + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "document.pdf").stat().st_size > 0


def test_claims_and_improvement_tables_are_written_only_where_the_report_has_rows(
        fixture_suite, tmp_path):  # noqa: F811
    alone = [r for r in fixture_records(fixture_suite) if r["variant"] == "cpep"]
    write.write_tables(report.build(fixture_suite, alone), tmp_path / "tex", ("tex",))
    assert sorted(p.name for p in (tmp_path / "tex").iterdir()) == ["differences.tex", "iqm.tex", "table.tex"]
