"""The benchmark harness runs end to end (a few iterations; no timing assertions)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))


def test_harness_quick(tmp_path):
    import harness

    results = harness.main(["--quick", "--out", str(tmp_path)])
    for name in ["results_cpu.json", "results_cpu.md", "chart_cpu.png"]:
        assert (tmp_path / name).stat().st_size > 0
    data = json.loads((tmp_path / "results_cpu.json").read_text())
    add = next(iter(data["workloads"].values()))
    expected = {"1 rt_mod(*tvm tensors)", "3 tvm_ffi f(*torch)", "5 ctypes TVMFFIFunctionCall",
                "6 tvmfast dynamic", "8 tvmfast prepared", "9 C loop floor"}
    assert expected <= set(add)
    assert all(row["median"] > 0 for row in add.values())
    assert set(data["sweep"]) == {"1", "4", "16", "64"}
    assert results["targets"]
