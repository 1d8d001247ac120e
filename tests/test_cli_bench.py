"""`tabgpt bench --backend numpy`: the gate comes first and the JSON names versions, date and command."""

import json

from pyscript_app.cli import main


def test_numpy_bench_writes_gate_and_timings(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--backend", "numpy", "--models", "nano", "--repeats", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.index("passed,") < text.index("numpy ms/step")
    res = json.loads(out.read_text())
    assert res["gate"] and all(g["passed"] for g in res["gate"])
    assert res["steps"][0]["model"] == "nano" and res["steps"][0]["numpy_ms"] > 0
    assert {"date", "command", "versions"} <= set(res)
