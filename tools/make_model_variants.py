#!/usr/bin/env python
"""Build real variants of ``mathperf-tiny`` that the comparison gate must tell apart.

- ``slow``: the same answers at about 3x the compute per token. The 4 trained layers are followed
  by 8 copies whose output projections (attention ``o_proj`` and MLP ``down_proj``) are zero, so
  each copy does all of a layer's work and adds nothing to the residual stream: the logits, and so
  every greedy answer, are those of the original model.
- ``mild``: the same construction with only 2 zero-output layers after the 4 trained ones: the
  same answers at about 1.3x the compute per token (the embedding and output head do not grow),
  a slowdown a ``max_ratio: 1.10`` margin must catch and a 1.25 one may not.
- ``noisy``: lower accuracy. Seeded Gaussian noise, scaled to each weight tensor's own spread, is
  added to every weight; the scale is searched until greedy accuracy on the demo suite lands in
  the asked range (75-85 % by default), checked by the gate's own backend and answer checker.
- ``copy``: the demo model unchanged, under another folder name (the null comparison).

    python tools/make_model_variants.py slow  /tmp/variants/slow
    python tools/make_model_variants.py mild  /tmp/variants/mild
    python tools/make_model_variants.py noisy /tmp/variants/noisy --seed 7
    python tools/make_model_variants.py copy  /tmp/variants/copy
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_MODEL = REPO / "pytest_mathperf" / "models" / "mathperf-tiny"
DEMO_SUITE = REPO / "suites" / "demo" / "arithmetic.yaml"
EXTRA_LAYER_FACTOR = 3  # slow: layers after, 3x the trained ones
MILD_EXTRA_LAYERS = 2  # mild: zero-output layers added after the trained ones
NOISE_SEARCH_STEPS = 8  # bisection steps over the noise scale, each one greedy pass over the demo suite


def copy_model(destination: Path) -> Path:
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(DEMO_MODEL, destination, ignore=shutil.ignore_patterns("README.md"))
    return destination


def make_slow(destination: Path, extra_layers: int | None = None) -> Path:
    """Append zero-output copies of the trained layers (by default twice as many as there are:
    3x the work per token), with identical logits."""
    from safetensors.torch import load_file, save_file

    copy_model(destination)
    config = json.loads((destination / "config.json").read_text())
    trained = config["num_hidden_layers"]
    weights = load_file(destination / "model.safetensors")
    extra_layers = trained * (EXTRA_LAYER_FACTOR - 1) if extra_layers is None else extra_layers
    for extra in range(extra_layers):
        source, target = extra % trained, trained + extra
        for name, tensor in list(weights.items()):
            prefix = f"model.layers.{source}."
            if name.startswith(prefix):
                copied = tensor.clone()
                if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
                    copied.zero_()  # the layer's contribution to the residual stream is exactly zero
                weights[f"model.layers.{target}." + name[len(prefix):]] = copied
    config["num_hidden_layers"] = trained + extra_layers
    config["layer_types"] = [config["layer_types"][0]] * config["num_hidden_layers"]
    (destination / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(weights, destination / "model.safetensors", metadata={"format": "pt"})
    return destination


def add_noise(destination: Path, scale: float, seed: int) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(DEMO_MODEL / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    for name in sorted(weights):
        tensor = weights[name]
        if tensor.is_floating_point() and tensor.numel() > 1:
            noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            weights[name] = tensor + noise * tensor.std() * scale
    save_file(weights, destination / "model.safetensors", metadata={"format": "pt"})


def suite_accuracy(model: Path) -> float:
    """Greedy accuracy on the demo suite through the gate's own backend and answer checker."""
    from pytest_mathperf.answers import check_answer
    from pytest_mathperf.backends import BackendOptions
    from pytest_mathperf.backends.hf import HFBackend
    from pytest_mathperf.runner import Runner, RunOptions
    from pytest_mathperf.suite import load_suite

    suite = load_suite(DEMO_SUITE)
    backend = HFBackend(BackendOptions(model=str(model), device="cpu"))
    backend.load()
    requests = Runner(RunOptions(models=(str(model),)))
    try:
        correct = sum(
            check_answer(backend.generate(requests.request_for(case, 0)).text, case.answer).status == "correct"
            for case in suite.cases
        )
    finally:
        backend.close()
    return correct / len(suite.cases)


def make_noisy(destination: Path, seed: int, low: float, high: float) -> tuple[Path, float, float]:
    """A noise scale whose accuracy lands in [low, high], by bisection; (folder, scale, accuracy).

    More noise means fewer right answers (not strictly, but closely enough to bisect on).
    """
    copy_model(destination)
    quiet, loud = 0.0, 1.0  # accuracy above the range at ``quiet``, below it at ``loud``
    for _ in range(NOISE_SEARCH_STEPS):
        scale = round((quiet + loud) / 2, 4)
        add_noise(destination, scale, seed)
        accuracy = suite_accuracy(destination)
        print(f"noise scale {scale:g}: demo-suite accuracy {accuracy:.1%}", file=sys.stderr)
        if low <= accuracy <= high:
            return destination, scale, accuracy
        quiet, loud = (scale, loud) if accuracy > high else (quiet, scale)
    raise SystemExit(f"no noise scale with seed {seed} gives accuracy in [{low:.0%}, {high:.0%}]; try another --seed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=("slow", "mild", "noisy", "copy"), help="which variant (described above)")
    parser.add_argument("destination", type=Path, help="folder to write the model into (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (noisy)")
    parser.add_argument(
        "--accuracy", type=float, nargs=2, default=(0.75, 0.85), metavar=("LOW", "HIGH"),
        help="noisy: the greedy demo-suite accuracy to land in (default 0.75 0.85)",
    )
    parser.add_argument("--scale", type=float, help="noisy: use this noise scale instead of searching (seed 1, 0.2812 gave 79.2 %%)")
    args = parser.parse_args(argv)
    if args.variant == "slow":
        print(make_slow(args.destination))
    elif args.variant == "mild":
        print(make_slow(args.destination, MILD_EXTRA_LAYERS))
    elif args.variant == "copy":
        print(copy_model(args.destination))
    elif args.scale is not None:
        copy_model(args.destination)
        add_noise(args.destination, args.scale, args.seed)
        print(f"{args.destination} (noise scale {args.scale:g}, seed {args.seed})")
    else:
        folder, scale, accuracy = make_noisy(args.destination, args.seed, *args.accuracy)
        print(f"{folder} (noise scale {scale:g}, seed {args.seed}, demo-suite accuracy {accuracy:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
