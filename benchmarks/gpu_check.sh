#!/usr/bin/env bash
# Every CUDA path of pytest-mathperf on the card of this machine, for the first runner with one:
# card name (NVML, CUDA, MIG), CUDA-synchronised TTFT against CUDA events, NVML memory against
# torch's (and the poller's peaks), bf16 support, a model spread over several cards, then the demo
# gate on `cuda`. Prints one line per check; exits 1 on any mismatch. Without CUDA it says so,
# runs what can run, and exits 0.
#
#   benchmarks/gpu_check.sh            # from a clone; makes .venv as .ci/run does if there is none
#   PYTHON=/path/to/python benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then
    py="$PYTHON"
else
    if [ ! -x .venv/bin/python ]; then
        echo "gpu_check: making .venv (torch from PyPI: the CUDA build on a Linux machine with a card)"
        python3 -m venv .venv && .venv/bin/python -m pip install --quiet --upgrade pip \
            && .venv/bin/python -m pip install --quiet torch==2.13.0 \
            && .venv/bin/python -m pip install --quiet -e ".[test]" || { echo "gpu_check: cannot make .venv"; exit 2; }
    fi
    py=.venv/bin/python
fi
bin="$(dirname "$py")"
status=0

"$py" benchmarks/gpu_check.py "$@" || status=1

if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "SKIP  demo gate on cuda          no CUDA on this machine"
    exit "$status"
fi

card="$("$py" -m pytest_mathperf.cli card)"
echo "      mathperf card                $card"
junit="$(mktemp -d)/gate.xml"
log="$(mktemp)"
"$bin/pytest" -p no:cacheprovider --mathperf --mathperf-model mathperf-tiny --mathperf-suites suites/demo \
    --mathperf-device cuda --mathperf-card "$card" --mathperf-no-history --junitxml "$junit" >"$log" 2>&1
gate=$?
"$py" - "$junit" "$gate" "$log" <<'PY' || status=1
import sys
import xml.etree.ElementTree as ElementTree

junit, gate, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
root = ElementTree.parse(junit).getroot()
cases = list(root.iter("testcase"))
failed = sum(1 for case in cases if case.find("failure") is not None or case.find("error") is not None)
devices = {p.get("value") for p in root.iter("property") if p.get("name") in ("mathperf.device", "mathperf.memory_source")}
ok = gate == 0 and failed == 0 and cases
print(f"{'PASS' if ok else 'FAIL':4}  demo gate on cuda            exit {gate}, {len(cases)} test cases, {failed} failed; {sorted(d for d in devices if d)}")
if not ok:
    print(open(log, encoding="utf-8").read()[-4000:])
sys.exit(0 if ok else 1)
PY

"$bin/pytest" -p no:cacheprovider -q -rs tests/test_devices.py -k "cuda" >"$log" 2>&1 \
    && echo "PASS  CUDA tests                   $(tail -1 "$log")" \
    || { echo "FAIL  CUDA tests                   $(tail -1 "$log")"; tail -40 "$log"; status=1; }
exit "$status"
