"""funcnn.memory: inside kept() (which parallel.workers() enters) memory freed by one step is
reused by the next instead of being handed back and page-faulted in again."""
import pytest

from funcnn import memory, parallel

glibc = pytest.mark.skipif(not memory.available(), reason="the allocator settings are glibc's malloc's")

# Minor page faults of a "step": allocating, touching and freeing 160 arrays of 1 MB (below
# numpy's huge-page size and the mmap bound: heap memory), inside kept() and after it. In a
# fresh process: the test process's heap has been shaped by every test before (and by the
# libraries they loaded) and says nothing about a training process.
_STEPS = r"""
import json, resource
import numpy as np
from funcnn import memory
who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
def step():
    before = resource.getrusage(who).ru_minflt
    arrays = [np.ones((1 << 20) // 8) for _ in range(160)]
    del arrays
    return resource.getrusage(who).ru_minflt - before
with memory.kept() as changed:
    step()
    inside = min(step() for _ in range(3))
step()
outside = min(step() for _ in range(3))
print(json.dumps({"changed": changed, "inside": inside, "outside": outside}))
"""


@glibc
def test_inside_kept_a_second_step_reuses_the_first_steps_memory():
    import json
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _STEPS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    pages = 160 * (1 << 20) // 4096
    assert got["changed"]
    assert got["inside"] < 0.02 * pages, got
    # outside, glibc hands the 160 MB back (more than its 64 MB trim threshold is free) and faults it in again
    assert got["outside"] > 0.5 * pages, got


def test_workers_hold_the_memory_once_for_nested_blocks(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "hold", lambda: calls.append("hold") or True)
    monkeypatch.setattr(memory, "release", lambda: calls.append("release"))
    with parallel.workers():
        with parallel.workers():
            assert calls == ["hold"]
        assert calls == ["hold"]
    assert calls == ["hold", "release"]
    with parallel.workers(enabled=False):
        pass
    assert calls == ["hold", "release"]


def test_workers_release_the_memory_after_an_exception(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "hold", lambda: calls.append("hold") or True)
    monkeypatch.setattr(memory, "release", lambda: calls.append("release"))
    with pytest.raises(KeyError):
        with parallel.workers():
            raise KeyError("x")
    assert calls == ["hold", "release"]


def test_without_glibc_nothing_changes(monkeypatch):
    monkeypatch.setitem(memory._state, "looked", True)
    monkeypatch.setitem(memory._state, "libc", None)
    assert not memory.available()
    assert memory.hold() is False
    memory.release()  # a no-op, not an error
    with memory.kept() as changed:
        assert changed is False


@glibc
def test_a_release_without_a_hold_is_an_error():
    with pytest.raises(RuntimeError, match="without a matching hold"):
        memory.release()


@glibc
def test_nested_holds_change_the_settings_once(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append(("mallopt", param, value))
            return 1

    monkeypatch.setitem(memory._state, "libc", Libc())
    with memory.kept():
        with memory.kept():
            pass
        assert calls == [("mallopt", -3, memory.MMAP_BYTES), ("mallopt", -1, memory.TRIM_BYTES)]
    assert calls[2:] == [("mallopt", -1, 2 * memory.MMAP_BYTES)]
