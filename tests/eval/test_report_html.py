"""The run report as a standalone HTML page, opened in headless Chromium: its tables and its
embedded figures render (a screenshot with content; every image decoded with a real size).

Chromium comes from Debian's ``chromium`` package (scripts/env/install_chromium.sh, run by
``make venv``); the browser test is skipped where no chromium binary exists."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from PIL import Image, ImageStat
from scripted_data import improved_rules, policy_rules, run_on, samples

from ovr.eval.html import markdown_to_html, write_html_report
from ovr.eval.report import build_report
from ovr.eval.runner import evaluate
from ovr.tracking import Tracker

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: appended to a copy of the page: once loaded, each image's decoded size and the tables' count
PROBE = """<script>window.addEventListener("load", () => {
  document.querySelectorAll("img").forEach(i => i.setAttribute("data-natural", i.naturalWidth + "x" + i.naturalHeight));
  document.body.setAttribute("data-tables", document.querySelectorAll("table").length);
});</script>"""


@pytest.fixture()
def report_dir(scripted_server, eval_cfg, tmp_path):
    """A report of two evaluations (SFT, RL) in one MLflow run with training curves, as build_report writes it."""
    data = samples()
    cfg = eval_cfg("eval.k=4", "eval.benchmarks=[arith, synthetic_visual]")
    with Tracker.open(cfg, "rl") as rl:
        for step, reward in enumerate([0.2, 0.3, 0.1, 0.35, 0.4, 0.6, 0.55, 0.5], start=1):
            rl.log_metrics({"reward_mean": reward, "response_len_mean": 40.0 - step, "accuracy": reward}, step=step)
    early = evaluate(
        cfg,
        data,
        ctx=run_on(cfg, scripted_server(policy_rules(data[3:])).url, rl.run_id),
        out_dir=tmp_path / "e0",
        progress=False,
        label="sft",
        step=0,
    )
    late = evaluate(
        cfg,
        data,
        ctx=run_on(cfg, scripted_server(improved_rules(data[3:])).url, rl.run_id),
        out_dir=tmp_path / "e3",
        progress=False,
        label="rl",
        step=3,
    )
    out = tmp_path / "report"
    build_report(cfg, [early, late], out)
    return out


def test_html_page_holds_the_tables_and_the_embedded_figures(report_dir):
    page = write_html_report(report_dir)
    assert page == report_dir / "report.html"
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<title>ovr run report: tiny-cpu</title>" in text
    assert "<style>" in text and "border-collapse" in text
    assert text.count("<table>") >= 2 and "<th>benchmark</th>" in text and "<td>arith</td>" in text
    assert '<td class="num">50.0</td>' in text
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', text)
    assert len(images) >= 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "figures/" not in text  # nothing outside the page


def test_markdown_to_html_escapes_the_title_and_renders_pipes_as_tables():
    page = markdown_to_html("# a <b> run\n\n| x | y |\n|---|--:|\n| 1 | 2 |\n")
    assert "<title>a &lt;b&gt; run</title>" in page
    assert re.search(r'<td class="num">1</td>\s*<td style="text-align: right;">2</td>', page)
    assert "<td>arith</td>" in markdown_to_html("| a | b |\n|---|---|\n| arith | 0.5 |")


def _chromium(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/env/install_chromium.sh installs it)")
def test_chromium_renders_the_tables_and_decodes_every_image(report_dir, tmp_path):
    page = write_html_report(report_dir)
    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2000)
    colours = img.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, table borders and zebra rows, the plots' colours
    assert max(ImageStat.Stat(img).stddev) > 20  # not a blank page
    white = sum(n for n, c in colours if min(c) >= 250)
    assert white < 0.97 * img.size[0] * img.size[1]

    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium("--dump-dom", "--virtual-time-budget=5000", probe.as_uri()).stdout
    assert re.search(r'<body data-tables="(\d+)"', dom), dom[:500]
    assert int(re.search(r'data-tables="(\d+)"', dom).group(1)) >= 2
    sizes = re.findall(r'data-natural="(\d+)x(\d+)"', dom)
    assert len(sizes) == len(re.findall(r"<img ", page.read_text())) >= 2
    assert all(int(w) >= 400 and int(h) >= 300 for w, h in sizes), sizes  # decoded, not broken images
    assert "<td>arith</td>" in dom
