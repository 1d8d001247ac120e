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


def test_versions_name_the_host_cpu_model(monkeypatch, tmp_path):
    """PyTorch eager, the peer, is bound by the host's kernel launches: the JSON names the host CPU."""
    import builtins

    from pyscript_app.cli import bench

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: real_open(cpuinfo if f == "/proc/cpuinfo" else f, *a, **k))
    assert bench._versions()["processor"] == "Intel(R) Xeon(R) Platinum 8480+"
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (_ for _ in ()).throw(OSError("no such file")))
    assert bench._cpu_model() is None
