"""The scripted NVML library (tests/nvml/fake_nvml.c): build it, write its script, load it.

nvidia-ml-py opens ``libnvidia-ml.so.1`` by name, so whichever library of that name the loader
finds first is the one our code talks to. A child process finds this one through
``LD_LIBRARY_PATH``; this process, whose loader read that variable when it started, gets it by
loading it first by path: a later ``dlopen`` of the same soname returns the library already loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "nvml" / "fake_nvml.c"
GIB = 1024**3
DRIVER = "550.54.15"

A100 = {
    "name": "NVIDIA A100-SXM4-80GB",
    "uuid": "GPU-5c8e3a10-0000-4000-8000-00000000a100",
    "bus_id": "00000000:07:00.0",
    "memory_total": 80 * GIB,
    "memory_used": 3 * GIB,
}
RTX = {
    "name": "NVIDIA GeForce RTX 3090",
    "uuid": "GPU-7d2f4b30-0000-4000-8000-000000003090",
    "bus_id": "00000000:0A:00.0",
    "memory_total": 24 * GIB,
    "memory_used": GIB,
}
SLICE_UUID = "MIG-0f1e2d3c-0000-4000-8000-00000001a100"
#: An A100 in MIG mode with one 1g.10gb slice, in slot 1 (slot 0 is empty, as after a slice is destroyed).
MIG_A100 = {
    **A100,
    "mig_mode": 1,
    "mig_devices": [
        {
            "slot": 1,
            "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
            "uuid": SLICE_UUID,
            "memory_total": 9856 * 1024**2,
            "memory_used": 2 * GIB,
            "processes": [{"pid": 4242, "used": 2 * GIB}],
        }
    ],
}


def build(folder: Path, hidden: tuple[str, ...] = ()) -> Path:
    """Compile the library into ``folder`` as ``libnvidia-ml.so.1``, without the ``hidden`` functions."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "the scripted NVML library needs a C compiler (cc or gcc): .ci/run installs gcc"
    library = folder / "libnvidia-ml.so.1"
    command = [compiler, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-Wl,-soname,libnvidia-ml.so.1",
               *(f"-DHIDE_{name}" for name in hidden), "-o", str(library), str(SOURCE)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return library


def write_script(path: Path, devices: list[dict[str, Any]], **settings: Any) -> None:
    """Replace the script at once (the library reads it again when the file changes)."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"driver": DRIVER, "devices": devices, **settings}), encoding="utf-8")
    os.replace(partial, path)
