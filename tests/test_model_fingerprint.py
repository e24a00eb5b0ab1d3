"""A folder model's weights are fingerprinted, so that new weights in the same folder break its trend."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import ARITHMETIC_SUITE, MODEL_DIR, write
from test_report import charts_of, page_text, parse

from pytest_mathperf.backends.fingerprint import BLOCK_BYTES, HEAD_BYTES, WHOLE_FILE_BYTES, folder_fingerprint
from pytest_mathperf.history import History


def _model_copy(folder: Path) -> Path:
    shutil.copytree(MODEL_DIR, folder)
    return folder


def test_the_same_files_give_the_same_fingerprint_wherever_they_are(tmp_path: Path) -> None:
    first, second = _model_copy(tmp_path / "a"), _model_copy(tmp_path / "b")
    assert folder_fingerprint(first) == folder_fingerprint(second)
    assert folder_fingerprint(first).startswith("sha256:") and len(folder_fingerprint(first)) == len("sha256:") + 16


def test_a_model_card_or_a_hidden_folder_changes_nothing_a_config_or_a_weight_changes_it(tmp_path: Path) -> None:
    model = _model_copy(tmp_path / "m")
    before = folder_fingerprint(model)
    (model / "README.md").write_text("a new model card")
    (model / ".cache").mkdir()
    (model / ".cache" / "lock").write_text("x")
    assert folder_fingerprint(model) == before
    config = (model / "config.json").read_text()
    (model / "config.json").write_text(config.replace('"num_hidden_layers": 4', '"num_hidden_layers": 5'))
    assert folder_fingerprint(model) != before
    (model / "config.json").write_text(config)
    weights = bytearray((model / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (model / "model.safetensors").write_bytes(bytes(weights))
    assert folder_fingerprint(model) != before


def test_a_large_checkpoint_is_sampled_not_read_whole(tmp_path: Path) -> None:
    """Head, evenly spaced blocks and tail decide; a checkpoint of any size costs about 3 MiB of reads."""
    model = tmp_path / "big"
    model.mkdir()
    size = WHOLE_FILE_BYTES * 4
    weights = model / "model.safetensors"
    with weights.open("wb") as handle:
        handle.truncate(size)
    before = folder_fingerprint(model)
    with weights.open("r+b") as handle:  # inside the first sampled block after the head
        handle.seek(HEAD_BYTES + (size - HEAD_BYTES) // 33 + BLOCK_BYTES // 2)
        handle.write(b"\x01")
    assert folder_fingerprint(model) != before


def test_new_weights_in_the_same_folder_break_the_trend_line_and_say_so(run_gate, pytester) -> None:
    """Two real gate runs of one folder, its weights replaced between them: the report breaks the line."""
    model = _model_copy(pytester.path / "models" / "m")
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", "version: 1\nno_budget: record\n")
    first = folder_fingerprint(model)
    run_gate("--mathperf-suites=suites", "-k", "add", model=str(model), history=True)
    weights = bytearray((model / "model.safetensors").read_bytes())
    weights[-2] ^= 0x01  # the last weight's lowest mantissa bit: the same answers, other weights
    (model / "model.safetensors").write_bytes(bytes(weights))
    second = folder_fingerprint(model)
    run_gate("--mathperf-suites=suites", "-k", "add", model=str(model), history=True)
    history_path = pytester.path / ".mathperf" / "history.db"
    with History(history_path) as history:
        revisions = [history.run(run_id).models[0].revision for run_id in history.run_ids()]
    assert revisions == [first, second]
    ttft = charts_of(parse(page_text(history_path)))["ttft_ms.p50"]
    assert ttft.content_changes == [
        f"not comparable, line broken: model weights changed: {first} → {second}"
    ] and ttft.lines == 2
