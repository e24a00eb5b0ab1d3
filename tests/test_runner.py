"""The runner keeps loaded models out of the garbage collector's way, and releases them in time."""

from __future__ import annotations

import gc
import weakref

from scripted import ScriptedBackend

from pytest_mathperf.backends import use_hook_backends
from pytest_mathperf.plugin import _keep_the_collector_away
from pytest_mathperf.runner import Runner, RunOptions


class CyclicBackend(ScriptedBackend):
    """A scripted model holding a reference cycle, as real models do: only the collector frees it."""

    def load(self):  # type: ignore[no-untyped-def]
        self.cycle = self
        return super().load()


def test_a_released_model_is_collected_before_the_next_one_loads_and_the_last_one_after_pytest() -> None:
    use_hook_backends({"cyclic": CyclicBackend})
    runner = Runner(RunOptions(models=("first", "second"), backend="cyclic", device="cpu"))
    try:
        first = weakref.ref(runner.session("first").backend)
        assert gc.get_freeze_count() > 0  # the loaded model is frozen, out of every collection's way
        gc.collect()
        assert first() is not None
        second = weakref.ref(runner.session("second").backend)
        assert first() is None  # released and collected before the second model's memory was measured
        runner.close()
        gc.collect()
        # The last model stays frozen through pytest's own end-of-session collections ...
        assert second() is not None and gc.get_freeze_count() > 0
        # ... and is thawed when the next session in this process starts.
        _keep_the_collector_away()
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert second() is None
    finally:
        gc.unfreeze()
        use_hook_backends({})
