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
from conftest import ARITHMETIC_SUITE, MODEL_DIR, write

from pytest_mathperf.cli import main as mathperf
from pytest_mathperf.history import History
from pytest_mathperf.outputs.view import RunView, build_view
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
    wrong: int = 1,
    revision: str = "a1b2c3d",
    dtype: str = "float16",
    card: str = CARD,
    budget: float = 350.0,
    environment: dict[str, str] | None = None,
) -> RunRecord:
    """A small run of real values; ``text`` goes into every free-text field a suite or model controls.

    Case number ``wrong`` is answered wrongly; ``environment`` adds to (or overrides) the run's environment.
    """
    started = 1_735_700_000.0 + index * 86_400
    model_records, case_records, budgets = [], [], []
    for model in models:
        model_records.append(
            ModelRecord(
                model=model + text, backend="hf", card=card, device="cuda:0", dtype=dtype, revision=revision,
                source="hf-cache", metrics={"load_s": 9.5, "vram_load_gb": 6.7, "vram_peak_gb": 7.0 + index / 100},
                memory_source="nvml-process",
            )
        )
        for number in range(cases):
            suite = ("algebra", "geometry")[number % 2] + text
            generations = tuple(
                GenerationRecord(
                    repeat=repeat, seed=repeat, status="correct" if number != wrong else "wrong",
                    extracted=("17, 19" if number != wrong else "3") + text, reason="" if number != wrong else "expected 17, 19" + text,
                    finish_reason="stop",
                    output=f"<think>run {index}: 2n + 2 = 36</think>答案是 \\boxed{{{'17, 19' if number != wrong else '3'}}}{text}",
                    metrics={"ttft_ms": ttft + 10 * repeat + number, "tokens_per_s": 107.6 - repeat, "output_tokens": 180, "e2e_ms": 1970.0},
                )
                for repeat in range(2)
            )
            case_records.append(
                CaseRecord(
                    model=model + text, suite=suite, case=f"case-{number}{text}", nodeid=f"suites/{suite}.yaml::case-{number}{text}",
                    prompt="两个连续奇数之和为 36，求这两个数。" + text, expected="17, 19" + text, tags=("zh",),
                    pass_rule="majority", passed=number != wrong, generations=generations,
                )
            )
        p50 = ttft + 5 + (cases - 1) / 2
        budgets.append(BudgetRecord(model + text, "ttft_ms.p50", "ttft_ms", "p50", "model", None, None, None, budget, p50, 2 * cases, p50 <= budget, card, "thresholds.yaml::m::ttft_ms.p50"))
        budgets.append(BudgetRecord(model + text, "accuracy", "accuracy", None, "model", None, None, 0.7, None, 0.75, cases, True, card, "thresholds.yaml::m::accuracy"))
    run_environment = {"card": card, "driver": "550.54.14", "cuda": "12.4", "torch": torch, "transformers": "4.51.3" + text,
                       "backend": "hf", "host": "gpu-runner-1", "suites_commit": "3c9e2a1", **(environment or {})}
    return RunRecord(started, started + 600, run_environment, tuple(model_records), tuple(case_records), tuple(budgets))


@dataclass
class ChartSeen:
    metric: str
    lines: int = 0  # polylines: a content change or a missing run breaks the line
    points: int = 0
    titles: list[str] = field(default_factory=list)  # every point's hover
    failed: list[str] = field(default_factory=list)  # titles of failed points
    budget_lines: int = 0
    changes: list[str] = field(default_factory=list)  # hovers of environment markers
    content_changes: list[str] = field(default_factory=list)  # hovers of suite / weights markers
    whiskers: int = 0
    blessed: list[str] = field(default_factory=list)
    edge_labels: list[str] = field(default_factory=list)
    x_ticks: list[str] = field(default_factory=list)
    y_ticks: list[str] = field(default_factory=list)
    point_ys: list[float] = field(default_factory=list)


class PageParser(HTMLParser):
    """Collects the charts of each panel (and of the cards side by side) and every src/href the page holds."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[str, list[ChartSeen]] = {}
        self.links: list[str] = []
        self._panel = ""
        self._chart: ChartSeen | None = None
        self._element: list[str] = []  # the open circle / change group / line whose <title> comes next
        self._text: str | None = None  # the open tick or edge label
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]
        classes = (values.get("class") or "").split()
        if "panel" in classes:
            self._panel = values.get("id") or values.get("data-model") or ""
            self.panels[self._panel] = []
        elif tag == "svg" and "chart" in classes:
            self._chart = ChartSeen(values["data-metric"] or "", lines=int(values["data-lines"] or 0))
            self.panels[self._panel].append(self._chart)
        elif self._chart is None:
            pass
        elif tag == "circle":
            self._chart.points += 1
            self._chart.point_ys.append(float(values["cy"] or 0))
            self._element = ["failed" if "failed" in classes else "point"]
        elif tag == "line" and "budget" in classes:
            self._chart.budget_lines += 1
        elif tag == "line" and "blessed" in classes:
            self._element = ["blessed"]
        elif tag == "g" and "change" in classes:
            self._element = ["content" if "content" in classes else "change"]
        elif tag == "path" and "whisker" in classes:
            self._chart.whiskers += 1
        elif tag == "text" and classes:
            self._text = classes[0]
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        elif tag == "title":
            self._in_title = False
        elif tag == "text":
            self._text = None

    def handle_data(self, data: str) -> None:
        chart = self._chart
        if chart is None:
            return
        if self._text is not None:
            {"x-tick": chart.x_ticks, "y-tick": chart.y_ticks, "budget-edge": chart.edge_labels}[self._text].append(data)
        elif self._in_title and self._element:
            kind = self._element.pop()
            if kind in ("failed", "point"):
                chart.titles.append(data)
            {"failed": chart.failed, "change": chart.changes, "content": chart.content_changes,
             "blessed": chart.blessed, "point": []}[kind].append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def page_text(history_path: Path) -> str:
    with History(history_path) as history:
        return render_report(history)


def charts_of(page: PageParser, panel: int = 0) -> dict[str, ChartSeen]:
    """The charts of the ``panel``-th trend panel (model × card)."""
    trends = [charts for name, charts in page.panels.items() if name.startswith("panel-")]
    return {chart.metric: chart for chart in trends[panel]}


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
            "ttft_ms.p50", "ttft_ms.p95", "tokens_per_s.mean", "vram_peak_gb", "accuracy", "accuracy@algebra", "accuracy@geometry",
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
        page = render_report(history, current=view_of(current))
    assert charts_of(parse(page))["ttft_ms.p50"].points == 4
    assert "Latest run: this run" in page


def view_of(run: RunRecord, uid: str = "", exit_status: int | None = None) -> RunView:
    return build_view(run, run.models[0].card, uid=uid, exit_status=exit_status)


def test_the_current_run_is_found_in_the_history_by_its_uid_not_its_times(three_runs: Path) -> None:
    with History(three_runs) as history:
        stored = history.summaries()
        second, latest = history.run(stored[1].run_id), history.run(stored[-1].run_id)
        # another runner recorded after this session's run: found by its uid, not appended again
        page = render_report(history, current=view_of(second, uid=stored[1].uid))
        assert charts_of(parse(page))["ttft_ms.p50"].points == 3
        assert re.search(r"Latest run: run 2\b", page)
        # a different run that happens to share the last run's timestamps and environment is not that run
        page = render_report(history, current=view_of(latest, uid="not-recorded-here"))
    assert charts_of(parse(page))["ttft_ms.p50"].points == 4
    assert "Latest run: this run" in page


def test_report_without_history_shows_the_current_run(tmp_path: Path) -> None:
    output = tmp_path / "out" / "report.html"
    write_report(None, output, current=view_of(make_run(1)))
    page = output.read_text()
    assert charts_of(parse(page))["ttft_ms.p50"].points == 1
    assert "1 run · 2 models" in page


def test_unreadable_history_still_reports_the_current_run(tmp_path: Path) -> None:
    broken = tmp_path / "history.db"
    broken.write_bytes(b"this is not an SQLite file" * 100)
    output = tmp_path / "report.html"
    write_report(History(broken), output, current=view_of(make_run(1)))
    page = output.read_text()
    assert f"history not shown: {broken} is corrupt or not an SQLite file" in page
    assert charts_of(parse(page))["ttft_ms.p50"].points == 1


def test_mathperf_report_command(three_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "report.html"
    assert mathperf(["report", "--history", str(three_runs), "-o", str(output)]) == 0
    assert capsys.readouterr().out == f"wrote {output} (3 runs, 2 models)\n"
    assert output.read_text().startswith("<!DOCTYPE html>")
    assert mathperf(["report", "--history", str(three_runs), "-o", str(output)]) == 0
    assert capsys.readouterr().out == f"replaced {output} (3 runs, 2 models)\n"  # never without a word


def test_mathperf_report_on_a_history_without_runs_leaves_the_report_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history, report = tmp_path / "history.db", tmp_path / "report.html"
    with History(history) as created:  # a gate stopped on a usage error can leave one behind
        created.begin_run("uid-killed", 1_700_000_000.0, {"card": "cpu"})
    report.write_text("<!DOCTYPE html>last week's report", encoding="utf-8")  # a page: -o refuses any other file
    assert mathperf(["report", "--history", str(history), "-o", str(report)]) == 1
    assert capsys.readouterr().err == f"mathperf report: {history} holds no complete run yet; {report} is left as it is\n"
    assert report.read_text(encoding="utf-8") == "<!DOCTYPE html>last week's report"


def test_mathperf_report_refuses_to_write_over_its_history(three_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = three_runs.read_bytes()
    assert mathperf(["report", "--history", str(three_runs), "-o", str(three_runs)]) == 2
    assert capsys.readouterr().err == f"mathperf report: -o {three_runs} is the history itself; writing the report there would replace it\n"
    assert three_runs.read_bytes() == before


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


def history_of(tmp_path: Path, *runs: RunRecord) -> Path:
    path = tmp_path / "history.db"
    with History(path) as history:
        for run in runs:
            history.append(run)
    return path


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_runs_are_named_by_label_commit_branch_and_ci_run(tmp_path: Path) -> None:
    identity = {"label": "nightly", "git_commit": COMMIT, "git_branch": "main", "ci_run_id": "9912"}
    path = history_of(
        tmp_path,
        make_run(1, environment=identity),
        make_run(2, environment={**identity, "label": "", "git_commit": "fedcba9876543210" * 2 + "fedcba98", "ci_run_id": "9913"}),
    )
    ttft = charts_of(parse(page_text(path)))["ttft_ms.p50"]
    assert ttft.x_ticks == ["nightly", "fedcba9"]  # the label where there is one, else the short commit
    assert ttft.titles[0].startswith("run 1 · nightly · 0123456789 (main) · CI run 9912 · 2025-01-02 02:53 UTC · 304 ms (")
    assert ttft.titles[1].startswith("run 2 · fedcba9876 (main) · CI run 9913 ·")
    assert ttft.changes == [] and ttft.content_changes == []  # a new commit or CI run is not a change of environment


def test_a_suite_change_breaks_the_line_instead_of_reading_as_a_regression(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1), make_run(2), make_run(3, cases=6, ttft=330.0))
    page = page_text(path)
    charts = charts_of(parse(page))
    ttft = charts["ttft_ms.p50"]
    assert ttft.points == 3 and ttft.lines == 2  # runs 1–2 joined; run 3 starts a new line
    assert ttft.content_changes == [
        "not comparable, line broken: suite algebra changed: 2 → 3 cases; suite geometry changed: 2 → 3 cases"
    ]
    assert ttft.changes == []  # not an environment change either
    assert charts["accuracy@algebra"].content_changes == ["not comparable, line broken: suite algebra changed: 2 → 3 cases"]
    assert "<td>content</td><td>suite algebra</td><td>2 cases</td><td>3 cases</td>" in page


def test_per_suite_fingerprints_mark_new_content_with_the_same_case_count(tmp_path: Path) -> None:
    path = history_of(
        tmp_path,
        make_run(1, environment={"suite_fingerprint.algebra" + "": "a" * 40, "suite_fingerprint.geometry": "b" * 40}),
        make_run(2, environment={"suite_fingerprint.algebra": "c" * 40, "suite_fingerprint.geometry": "b" * 40}),
    )
    charts = charts_of(parse(page_text(path)))
    message = "not comparable, line broken: suite algebra changed: same 2 cases, new content"
    assert charts["ttft_ms.p50"].content_changes == [message] and charts["ttft_ms.p50"].lines == 2
    assert charts["accuracy@algebra"].content_changes == [message]
    assert charts["accuracy@geometry"].content_changes == [] and charts["accuracy@geometry"].lines == 1


def test_new_weights_break_the_line(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1), make_run(2, revision="e4f5a6b"))
    ttft = charts_of(parse(page_text(path)))["ttft_ms.p50"]
    assert ttft.content_changes == ["not comparable, line broken: model weights changed: a1b2c3d → e4f5a6b"]
    assert ttft.lines == 2


def test_environment_markers_for_driver_and_dtype_never_for_a_busy_host(tmp_path: Path) -> None:
    path = history_of(
        tmp_path,
        make_run(1),
        make_run(2, dtype="bfloat16", environment={"driver": "555.42.02", "host_busy": "busy: 1.2 other cores"}),
        make_run(3, dtype="bfloat16", environment={"driver": "555.42.02", "host_busy": "busy: 1.1 other cores"}),
        make_run(4, dtype="bfloat16", environment={"driver": "555.42.02"}),
    )
    page = page_text(path)
    ttft = charts_of(parse(page))["ttft_ms.p50"]
    assert ttft.changes == ["environment changed: driver: 550.54.14 → 555.42.02; dtype: float16 → bfloat16"]
    assert ttft.content_changes == [] and ttft.lines == 1
    assert "measured on a busy host: busy: 1.2 other cores" in page  # on the run's own point instead


def test_each_point_shows_the_interval_of_its_own_samples(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1), make_run(2))
    charts = charts_of(parse(page_text(path)))
    ttft = charts["ttft_ms.p50"]
    # 8 samples, 298–311 ms: the 95 % CI of their median runs from the lowest to the highest.
    assert "304 ms (95% CI of the median 298–311, n = 8)" in ttft.titles[0]
    assert ttft.whiskers == 2
    assert "too few samples for a 95% CI of the p95, n = 8" in charts["ttft_ms.p95"].titles[0]
    assert charts["ttft_ms.p95"].whiskers == 0
    assert "(3/4, 95% CI 30%–95%)" in charts["accuracy"].titles[0] and charts["accuracy"].whiskers == 2
    assert charts["vram_peak_gb"].whiskers == 0  # measured once per run: no interval


def test_a_run_blessed_with_mathperf_bless_is_drawn_as_the_blessed_baseline(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1), make_run(2, environment={"label": "v1.2"}), make_run(3, ttft=330.0))
    with History(path) as history:
        history.bless([2])  # the history's flag, as `mathperf bless 2` sets it; the environment says nothing
    page = page_text(path)
    charts = charts_of(parse(page))
    assert charts["ttft_ms.p50"].blessed == ["blessed baseline: run 2 · v1.2, 304 ms"]
    assert "blessed baseline" in charts["ttft_ms.p50"].titles[1]
    assert 'class="blessed-ring"' in page and "◇ ⋯</b> blessed baseline" in page  # the legend's ◇ is drawn
    assert "blessed baseline" not in page_text(history_of(tmp_path / "none", make_run(1)))  # and promised only then


def test_y_axis_starts_at_zero_and_a_far_budget_is_an_edge_label(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1, ttft=30.0, budget=4000.0), make_run(2, ttft=31.0, budget=4000.0))
    charts = charts_of(parse(page_text(path)))
    ttft = charts["ttft_ms.p50"]
    assert ttft.y_ticks[0] == "0"
    assert ttft.budget_lines == 0 and ttft.edge_labels == ["↑ budget ≤ 4000 ms (off scale)"]
    assert all(y < 60 for y in ttft.point_ys)  # the data fills the plot (top 16, bottom 146), not the floor
    near = history_of(tmp_path / "near", make_run(1, ttft=298.0), make_run(2, ttft=301.0))
    ttft = charts_of(parse(page_text(near)))["ttft_ms.p50"]
    assert ttft.y_ticks[0] == "0" and ttft.budget_lines == 1 and ttft.edge_labels == []


def test_the_blessed_run_is_the_baseline(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1), make_run(2, environment={"blessed": "yes", "label": "v1.2"}), make_run(3, ttft=330.0))
    charts = charts_of(parse(page_text(path)))
    assert charts["ttft_ms.p50"].blessed == ["blessed baseline: run 2 · v1.2, 304 ms"]
    assert "blessed baseline" in charts["ttft_ms.p50"].titles[1]
    assert charts_of(parse(page_text(history_of(tmp_path / "none", make_run(1)))))["ttft_ms.p50"].blessed == []


def test_cases_that_flipped_show_both_outputs(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1, wrong=1), make_run(2, wrong=2, text=""))
    page = page_text(path)
    group = page[page.index('<div class="flip-group" data-model="' + MODELS[0]):]
    group = group[: group.index("</div>\n<div class=\"flip-group\"")]
    assert "run 1 → run 2 · 2 of 4 cases flipped" in group
    regressed = group[group.index('<details class="flip regressed">'):group.index('<details class="flip fixed">')]
    assert "right → wrong</span> algebra / case-2" in regressed
    assert "<pre>&lt;think&gt;run 1: 2n + 2 = 36&lt;/think&gt;答案是 \\boxed{17, 19}</pre>" in regressed
    assert "<pre>&lt;think&gt;run 2: 2n + 2 = 36&lt;/think&gt;答案是 \\boxed{3}</pre>" in regressed
    assert "wrong → right</span> geometry / case-1" in group[group.index('<details class="flip fixed">'):]


def test_flipped_outputs_are_escaped(tmp_path: Path) -> None:
    path = history_of(tmp_path, make_run(1, text=INJECTED), make_run(2, text=INJECTED, wrong=2))
    page = page_text(path)
    assert page.count("<script") == 1
    assert "right → wrong</span> algebra&lt;script&gt;document.body" in page


def test_cards_by_models_matrix_and_one_model_across_cards(tmp_path: Path) -> None:
    other = "NVIDIA H100 80GB HBM3"
    path = history_of(
        tmp_path,
        make_run(1), make_run(2, card=other, ttft=120.0, budget=150.0),
        make_run(3, ttft=402.0),  # fails the 350 ms budget on the 3090
    )
    page = page_text(path)
    matrix = page[page.index('<table class="fleet">'):page.index("</table>", page.index('<table class="fleet">'))]
    rows = re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", matrix, re.S)[1:]  # below the header
    assert [card for card, _ in rows] == [CARD, other]
    assert re.findall(r'data-verdict="([^"]+)"', rows[0][1]) == ["failed", "failed"]
    assert re.findall(r'data-verdict="([^"]+)"', rows[1][1]) == ["passed", "passed"]
    assert "ttft_ms.p50" in rows[0][1] and "TTFT p50 <strong>408 ms</strong>" in rows[0][1] and "run 3 ·" in rows[0][1]
    assert "accuracy <strong>75.0% (3/4)</strong>" in rows[1][1]
    page_parsed = parse(page)
    side = page_parsed.panels[MODELS[0]]  # this model's cards side by side
    assert [chart.metric for chart in side][:4] == ["ttft_ms.p50", "ttft_ms.p50", "ttft_ms.p95", "ttft_ms.p95"]
    assert [chart.points for chart in side[:2]] == [2, 1]
    assert side[0].y_ticks == side[1].y_ticks  # one y-axis for both cards


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
def test_page_in_a_real_browser(tmp_path: Path) -> None:
    history_path = tmp_path / "history.db"
    with History(history_path) as history:
        history.append(make_run(1, torch="2.4.1"))
        history.append(make_run(2, ttft=402.0, text=INJECTED + INJECTED_IMG))
        history.append(make_run(3, ttft=402.0, text=INJECTED + INJECTED_IMG, wrong=2))  # flips with injected outputs
    output = tmp_path / "report.html"
    with History(history_path) as history:
        write_report(history, output)
    dom = browser_dom(output, tmp_path / "profile")
    assert re.search(r'<html[^>]* data-script="ran"', dom)  # scripts do run here: the page's own did
    assert not re.search(r"<body[^>]* data-pwned", dom)  # the injected ones did not
    assert "&lt;script&gt;document.body.setAttribute" in dom  # they show as text
    charts = re.findall(r'<svg class="chart"[^>]*data-metric="([^"]+)"[^>]*>(.*?)</svg>', dom, re.S)
    # Runs 2 and 3's model names carry the injection, so they are models of their own: 4 panels of 7 charts.
    assert len(charts) == 28
    assert [body.count("<circle") for _, body in charts] == [1] * 14 + [2] * 14
    flips = re.findall(r'<details class="flip (\w+)">\s*<summary><span class="verdict \w+">([^<]+)</span> ([^<]+?) <', dom)
    assert [(kind, direction) for kind, direction, _ in flips] == [("regressed", "right → wrong"), ("fixed", "wrong → right")] * 2
    assert all(case.startswith("algebra&lt;script&gt;") or case.startswith("geometry&lt;script&gt;") for _, _, case in flips)


TWO_CARD_BUDGETS = """
version: 1
cards:
  cpu-a:
    models:
      mathperf-tiny: {rss_peak_gb: {max: 100}, accuracy: {min: 0.6}}
  cpu-b:
    models:
      mathperf-tiny: {rss_peak_gb: {max: 100}, accuracy: {min: 0.6}}
"""
#: Two generations per case, so six samples give each TTFT point a 95 % interval of its median.
TWO_REPEATS_SUITE = ARITHMETIC_SUITE.replace("  max_new_tokens: 64\n", "  max_new_tokens: 64\n  repeats: 2\n")
NEW_CASE = """
  - id: zh-add
    prompt: "计算 85 + 470。"
    answer: 555
    tags: [zh]
"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
@pytest.mark.skipif(not (MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
def test_demo_runs_on_two_cards_with_a_suite_change_in_a_real_browser(pytester: pytest.Pytester, run_gate) -> None:
    """The demo model recorded as two cards, then a case added to its suite: the fleet and trend views."""
    assert "repeats: 2" in TWO_REPEATS_SUITE
    write(pytester, "suites/arithmetic.yaml", TWO_REPEATS_SUITE)
    write(pytester, "thresholds.yaml", TWO_CARD_BUDGETS)
    history = ("--mathperf-history", "history.db")
    for card in ("cpu-a", "cpu-b"):
        run_gate("--mathperf-card", card, *history, history=True).result.assert_outcomes(passed=5)
    write(pytester, "suites/arithmetic.yaml", TWO_REPEATS_SUITE + NEW_CASE)
    run = run_gate("--mathperf-card", "cpu-a", *history, "--mathperf-html", "report.html", history=True)
    run.result.assert_outcomes(passed=6)
    dom = browser_dom(pytester.path / "report.html", pytester.path / "profile")
    assert re.search(r'<html[^>]* data-script="ran"', dom)
    matrix = dom[dom.index('<table class="fleet">'):dom.index("</table>", dom.index('<table class="fleet">'))]
    rows = re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", matrix, re.S)[1:]
    assert [(card, re.findall(r'data-verdict="([^"]+)"', cells)) for card, cells in rows] == [
        ("cpu-a", ["passed"]), ("cpu-b", ["passed"])
    ]
    assert "accuracy <strong>100.0% (4/4)</strong>" in rows[0][1] and "run 3 ·" in rows[0][1]
    assert "accuracy <strong>100.0% (3/3)</strong>" in rows[1][1] and "run 2 ·" in rows[1][1]
    page = parse(dom)
    cpu_a = charts_of(page, 0)["ttft_ms.p50"]
    assert cpu_a.points == 2 and cpu_a.lines == 2  # the suite change breaks the line
    assert cpu_a.content_changes == ["not comparable, line broken: suite arithmetic changed: 3 → 4 cases"]
    assert cpu_a.whiskers == 2 and "95% CI of the median" in cpu_a.titles[0]
    assert cpu_a.y_ticks[0] == "0"
    memory = charts_of(page, 0)["rss_peak_gb"]  # a budget far above the data is a label, not a line on the floor
    assert memory.edge_labels == ["↑ budget ≤ 100 GB (off scale)"] and memory.budget_lines == 0
    side = page.panels["mathperf-tiny"]  # the model's two cards side by side
    assert [chart.metric for chart in side[:2]] == ["ttft_ms.p50", "ttft_ms.p50"]
    assert side[0].y_ticks == side[1].y_ticks
    assert re.search(r'data-model="mathperf-tiny" data-card="cpu-a">\s*<h3>mathperf-tiny <span class="muted">on cpu-a: '
                     r'run 1 → run 3 · 0 of 3 cases flipped · 1 new', dom)


def browser_dom(page: Path, profile: Path) -> str:
    """The page's DOM after headless Chromium loaded it (and ran what it was allowed to)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and "pytest-mathperf report" in result.stdout, result.stderr[-2000:]
    return result.stdout


def test_the_latest_runs_comparisons_are_shown_escaped(tmp_path: Path) -> None:
    from pytest_mathperf.report.html import write_report
    from pytest_mathperf.results import ComparisonRecord, RunRecord

    comparison = ComparisonRecord(
        model="<b>cand</b>", baseline="base", name="ttft_ms.p50", metric="ttft_ms", statistic="p50", suite=None,
        margin="ratio ≤ 1.25", verdict="regression", estimate=3.0, low=2.9, high=3.1, p_value=0.0002, samples=48,
        candidate_value=15.0, baseline_value=5.0, reason="", card="cpu", nodeid="thresholds.yaml::cand::compare::ttft_ms.p50",
    )
    run = RunRecord(started_at=0.0, finished_at=1.0, environment={"card": "cpu"}, models=(), cases=(), budgets=(), comparisons=(comparison,))
    output = tmp_path / "report.html"
    write_report(None, output, current=build_view(run, "cpu"))
    page = output.read_text(encoding="utf-8")
    assert "Candidate against baseline" in page and "REGRESSION" in page and "3.00× [2.90×, 3.10×]" in page
    assert "&lt;b&gt;cand&lt;/b&gt;" in page and "<b>cand</b>" not in page
