"""The HTML trend report: charts and their points, budgets, escaping, no network, a real browser."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_mathperf.cli import main as mathperf
from pytest_mathperf.history import History
from pytest_mathperf.report.html import MAX_POINTS, render_report, write_report
from pytest_mathperf.results import BudgetRecord, CaseRecord, GenerationRecord, ModelRecord, RunRecord

CARD = "NVIDIA GeForce RTX 3090"
MODELS = ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "Qwen/Qwen2.5-Math-1.5B")
INJECTED = '<script>document.body.setAttribute("data-pwned","script")</script>'
INJECTED_IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"


def make_run(
    index: int,
    *,
    ttft: float = 298.0,
    torch: str = "2.5.1",
    models: tuple[str, ...] = MODELS,
    text: str = "",
    cases: int = 4,
) -> RunRecord:
    """A small run of real values; ``text`` goes into every free-text field a suite or model controls."""
    started = 1_735_700_000.0 + index * 86_400
    model_records, case_records, budgets = [], [], []
    for model in models:
        model_records.append(
            ModelRecord(
                model=model + text, backend="hf", card=CARD, device="cuda:0", dtype="float16", revision="a1b2c3d",
                source="hf-cache", metrics={"load_s": 9.5, "vram_load_gb": 6.7, "vram_peak_gb": 7.0 + index / 100},
                memory_source="nvml-process",
            )
        )
        for number in range(cases):
            suite = ("algebra", "geometry")[number % 2] + text
            generations = tuple(
                GenerationRecord(
                    repeat=repeat, seed=repeat, status="correct" if number != 1 else "wrong",
                    extracted=("17, 19" if number != 1 else "3") + text, reason="" if number != 1 else "expected 17, 19" + text,
                    finish_reason="stop", output=f"<think>2n + 2 = 36</think>答案是 \\boxed{{17, 19}}{text}",
                    metrics={"ttft_ms": ttft + 10 * repeat + number, "tokens_per_s": 107.6 - repeat, "output_tokens": 180, "e2e_ms": 1970.0},
                )
                for repeat in range(2)
            )
            case_records.append(
                CaseRecord(
                    model=model + text, suite=suite, case=f"case-{number}{text}", nodeid=f"suites/{suite}.yaml::case-{number}{text}",
                    prompt="两个连续奇数之和为 36，求这两个数。" + text, expected="17, 19" + text, tags=("zh",),
                    pass_rule="majority", passed=number != 1, generations=generations,
                )
            )
        p50 = ttft + 5 + (cases - 1) / 2
        budgets.append(BudgetRecord(model + text, "ttft_ms.p50", "ttft_ms", "p50", "model", None, None, None, 350.0, p50, 2 * cases, p50 <= 350, CARD, "thresholds.yaml::m::ttft_ms.p50"))
        budgets.append(BudgetRecord(model + text, "accuracy", "accuracy", None, "model", None, None, 0.7, None, 0.75, cases, True, CARD, "thresholds.yaml::m::accuracy"))
    environment = {"card": CARD, "driver": "550.54.14", "cuda": "12.4", "torch": torch, "transformers": "4.51.3" + text,
                   "backend": "hf", "host": "gpu-runner-1", "suites_commit": "3c9e2a1"}
    return RunRecord(started, started + 600, environment, tuple(model_records), tuple(case_records), tuple(budgets))


@dataclass
class ChartSeen:
    metric: str
    points: int = 0
    failed: list[str] = field(default_factory=list)  # titles of failed points
    budget_lines: int = 0
    changes: list[str] = field(default_factory=list)


class PageParser(HTMLParser):
    """Collects the charts of each panel and every src/href the page holds."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[str, list[ChartSeen]] = {}
        self.links: list[str] = []
        self._panel = ""
        self._chart: ChartSeen | None = None
        self._element: list[str] = []  # the open circle / change group whose <title> comes next
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]
        classes = (values.get("class") or "").split()
        if "panel" in classes:
            self._panel = values["id"] or ""
            self.panels[self._panel] = []
        elif tag == "svg" and "chart" in classes:
            self._chart = ChartSeen(values["data-metric"] or "")
            self.panels[self._panel].append(self._chart)
        elif self._chart is not None and tag == "circle":
            self._chart.points += 1
            self._element = ["failed" if "failed" in classes else "point"]
        elif self._chart is not None and tag == "line" and "budget" in classes:
            self._chart.budget_lines += 1
        elif self._chart is not None and tag == "g" and "change" in classes:
            self._element = ["change"]
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and self._chart is not None and self._element:
            kind = self._element.pop()
            if kind == "failed":
                self._chart.failed.append(data)
            elif kind == "change":
                self._chart.changes.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def page_text(history_path: Path) -> str:
    with History(history_path) as history:
        return render_report(history)


def charts_of(page: PageParser, panel: int = 0) -> dict[str, ChartSeen]:
    return {chart.metric: chart for chart in list(page.panels.values())[panel]}


@pytest.fixture
def three_runs(tmp_path: Path) -> Path:
    """Run 2 misses the TTFT budget; run 3 comes with a torch upgrade."""
    path = tmp_path / "history.db"
    with History(path) as history:
        history.append(make_run(1, ttft=298.0, torch="2.4.1"))
        history.append(make_run(2, ttft=402.0, torch="2.4.1"))
        history.append(make_run(3, ttft=301.0, torch="2.5.1"))
    return path


def test_a_chart_per_metric_with_a_point_per_run(three_runs: Path) -> None:
    with History(three_runs) as history:
        page = parse(render_report(history))
    assert len(page.panels) == 2  # one per model on this card
    for index in range(2):
        charts = charts_of(page, index)
        assert list(charts) == [
            "ttft_ms.p50", "ttft_ms.p95", "tokens_per_s.p50", "vram_peak_gb", "accuracy", "accuracy@algebra", "accuracy@geometry",
        ]
        assert {metric: chart.points for metric, chart in charts.items()} == dict.fromkeys(charts, 3)


def test_budget_line_and_failing_run_marked(three_runs: Path) -> None:
    with History(three_runs) as history:
        charts = charts_of(parse(render_report(history)))
    ttft = charts["ttft_ms.p50"]
    assert ttft.budget_lines == 1
    assert len(ttft.failed) == 1 and ttft.failed[0].startswith("run 2 ·") and "budget FAILED" in ttft.failed[0]
    assert "≤ 350" in ttft.failed[0]
    assert charts["accuracy"].budget_lines == 1 and charts["accuracy"].failed == []
    assert charts["ttft_ms.p95"].budget_lines == 0  # no budget on p95 in these runs
    assert "<span>latest 107 tok/s</span></figcaption>" in page_text(three_runs)  # no budget, no "budget" in its caption


def test_environment_change_marked_on_every_chart(three_runs: Path) -> None:
    with History(three_runs) as history:
        text = render_report(history)
    for chart in charts_of(parse(text)).values():
        assert chart.changes == ["environment changed: torch: 2.4.1 → 2.5.1"]
    assert "<td>torch</td><td>2.4.1</td><td>2.5.1</td>" in text


def test_many_runs_are_summarised_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with History(path) as history:
        for index in range(250):
            history.append(make_run(index, ttft=420.0 if index == 137 else 300.0, models=MODELS[:1], cases=2))
        page = render_report(history)
    ttft = charts_of(parse(page))["ttft_ms.p50"]
    assert ttft.points == MAX_POINTS
    assert re.search(r'data-metric="ttft_ms.p50" data-points="100" data-runs="250" data-failed-runs="1"', page)
    [failed] = ttft.failed
    assert "run 138" in failed and "budget failed in 1 runs" in failed  # the group holding run 138 (index 137)


def test_text_from_suites_and_models_is_escaped(tmp_path: Path) -> None:
    with History(tmp_path / "history.db") as history:
        history.append(make_run(1, text=INJECTED + INJECTED_IMG))
        page = render_report(history)
    assert page.count("<script") == 1  # the page's own
    assert "<img" not in page
    assert INJECTED not in page
    escaped = "&lt;script&gt;document.body.setAttribute(&#34;data-pwned&#34;,&#34;script&#34;)&lt;/script&gt;"
    assert page.count(escaped) > 10  # case id, suite, prompt, expected, extracted, output, model, environment


def test_page_is_self_contained(three_runs: Path) -> None:
    with History(three_runs) as history:
        page = render_report(history)
    links = parse(page).links
    assert links and all(link.startswith("#") for link in links)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "http://" not in page and "https://" not in page
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy and "default-src 'none'" in policy.group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy.group(1)  # only the page's own script may run


def test_current_run_not_yet_recorded_is_shown(three_runs: Path) -> None:
    current = make_run(4, ttft=310.0)
    with History(three_runs) as history:
        page = render_report(history, current=current)
    assert charts_of(parse(page))["ttft_ms.p50"].points == 4
    assert "Latest run: this run" in page


def test_report_without_history_shows_the_current_run(tmp_path: Path) -> None:
    output = tmp_path / "out" / "report.html"
    write_report(None, output, current=make_run(1))
    page = output.read_text()
    assert charts_of(parse(page))["ttft_ms.p50"].points == 1
    assert "1 run · 2 models" in page


def test_unreadable_history_still_reports_the_current_run(tmp_path: Path) -> None:
    broken = tmp_path / "history.db"
    broken.write_bytes(b"this is not an SQLite file" * 100)
    output = tmp_path / "report.html"
    write_report(History(broken), output, current=make_run(1))
    page = output.read_text()
    assert f"history not shown: {broken} is corrupt or not an SQLite file" in page
    assert charts_of(parse(page))["ttft_ms.p50"].points == 1


def test_mathperf_report_command(three_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "report.html"
    assert mathperf(["report", "--history", str(three_runs), "-o", str(output)]) == 0
    assert capsys.readouterr().out == f"wrote {output} (3 runs, 2 models)\n"
    assert output.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path} does not exist (record runs with `pytest --mathperf` or pass --history PATH)"),
        (b"\x00garbage" * 600, "{path} is corrupt or not an SQLite file: file is not a database"),
    ],
    ids=["missing", "corrupt"],
)
def test_mathperf_report_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "history.db"
    if content is not None:
        path.write_bytes(content)
    assert mathperf(["report", "--history", str(path), "-o", str(tmp_path / "report.html")]) == 1
    captured = capsys.readouterr()
    assert captured.err == "mathperf report: " + message.format(path=path) + "\n"
    assert not (tmp_path / "report.html").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
def test_page_in_a_real_browser(tmp_path: Path) -> None:
    history_path = tmp_path / "history.db"
    with History(history_path) as history:
        history.append(make_run(1, torch="2.4.1"))
        history.append(make_run(2, ttft=402.0, text=INJECTED + INJECTED_IMG))
    output = tmp_path / "report.html"
    with History(history_path) as history:
        write_report(history, output)
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", output.as_uri(),
        ],
        capture_output=True, text=True, timeout=60,
    )
    dom = result.stdout
    assert result.returncode == 0 and "pytest-mathperf report" in dom, result.stderr[-2000:]
    assert re.search(r'<html[^>]* data-script="ran"', dom)  # scripts do run here: the page's own did
    assert not re.search(r"<body[^>]* data-pwned", dom)  # the injected ones did not
    assert "&lt;script&gt;document.body.setAttribute" in dom  # they show as text
    charts = re.findall(r'<svg class="chart"[^>]*data-metric="([^"]+)"[^>]*>(.*?)</svg>', dom, re.S)
    # Run 2's model names carry the injection, so they are models of their own: 4 panels of 7 charts.
    assert len(charts) == 28
    assert all(body.count("<circle") == 1 for _, body in charts)
