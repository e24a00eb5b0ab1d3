"""What pip users get: an sdist that holds everything the tests read, a wheel that holds what
`mathperf init` and the demo gate need (and no tests), the licence and the metadata.

Both are built the way pip builds them, by setuptools' PEP 517 hooks in a fresh environment
(the development environment's setuptools may be older than the one pyproject.toml asks for).
"""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pytest_mathperf.scaffold import STARTER_SUITES

ROOT = Path(__file__).resolve().parent.parent
#: Everything under these is read by the tests (suites, budgets, workflows, tools, the model).
TESTED_TREES = ("tests/", "suites/", "tools/", "pytest_mathperf/", ".github/", ".ci/")
TESTED_FILES = ("thresholds.yaml", "pyproject.toml", "README.md", "LICENSE")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel), the wheel built from the unpacked sdist as `python -m build` does."""
    work = tmp_path_factory.mktemp("build")
    env_dir = work / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "setuptools>=77", "wheel"], check=True, timeout=600
    )
    hooks = "import sys; from setuptools import build_meta; print(getattr(build_meta, sys.argv[1])(sys.argv[2]))"
    dist = work / "dist"
    dist.mkdir()
    sdist_name = _hook(python, hooks, "build_sdist", dist, cwd=ROOT)
    sdist = dist / sdist_name
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    (source,) = (work / "unpacked").iterdir()
    wheel = dist / _hook(python, hooks, "build_wheel", dist, cwd=source)
    return sdist, wheel


def _hook(python: str, code: str, hook: str, dist: Path, cwd: Path) -> str:
    done = subprocess.run(
        [python, "-c", code, hook, str(dist)], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _tracked_files() -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.skip("not a git checkout: the files to expect come from `git ls-files`")
    return [name for name in done.stdout.decode().split("\0") if name]


def test_the_sdist_holds_every_file_the_tests_read(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        members = {member.name.split("/", 1)[1]: member for member in archive.getmembers() if "/" in member.name}
    wanted = [
        name for name in _tracked_files() if name.startswith(TESTED_TREES) or name in TESTED_FILES
    ]
    missing = [name for name in wanted if name not in members]
    assert not missing, missing
    assert "tests/conftest.py" in wanted and "suites/demo/arithmetic.yaml" in wanted
    links = [name for name, member in members.items() if member.issym() or member.islnk()]
    assert not links, f"links in the sdist: {links}"  # pytest_mathperf/suites is a link in the checkout
    assert members["pytest_mathperf/suites/demo/arithmetic.yaml"].isfile()


def test_the_wheel_holds_the_starter_files_and_no_tests(built: tuple[Path, Path]) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.message_from_bytes(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        licence = archive.read(next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))).decode()
    for suite in STARTER_SUITES:
        assert f"pytest_mathperf/suites/{suite}" in names
    assert "pytest_mathperf/suites/data/gsm8k-sample.jsonl" in names  # gsm8k-sample.yaml's cases_from
    for template in ("mathperf-gate.yml", "thresholds.yaml", "pytest-options.toml"):
        assert f"pytest_mathperf/init_templates/{template}" in names
    assert "pytest_mathperf/models/mathperf-tiny/model.safetensors" in names
    assert not [name for name in names if name.startswith(("tests/", "suites/"))]
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert metadata["Requires-Python"] == ">=3.10"
    classifiers = metadata.get_all("Classifier")
    assert "Framework :: Pytest" in classifiers
    versions = sorted(c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3."))
    assert versions[0] == "3.10", versions  # the classifiers start where requires-python does


def test_the_licence_file_is_the_declared_licence() -> None:
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text("utf-8")
