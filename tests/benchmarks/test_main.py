"""python -m benchmarks runs every benchmark module in turn."""

import benchmarks.__main__ as runner


def test_runs_every_module_with_quick(monkeypatch):
    """Each module's main gets --quick, in the order lenet, inference, modern, layers,
    compiler, data."""
    calls = []
    for module in runner.MODULES:
        monkeypatch.setattr(module, "main", lambda argv, m=module: calls.append(
            (m.__name__, argv)))
    assert runner.main(["--quick"]) == 0
    assert calls == [(f"benchmarks.{n}", ["--quick"])
                     for n in ("lenet", "inference", "modern", "layers", "compiler", "data")]
