"""A built wheel is a working `tabgpt` anywhere: built from a copy of the sources, installed into a
fresh virtual environment outside the checkout, run from a folder that is not the checkout.

The fresh environment gets its dependencies (numpy, wgpu, ...) through a .pth line naming this
environment's site-packages, so nothing is downloaded; a plain path line in a .pth adds that folder
without running its .pth files, so the editable install of this checkout stays invisible there.
Every shader the runs below compile comes from the installed package (pyscript_app/shaders/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from _gpu import gpu  # noqa: F401  (fixture: an adapter must exist, else skip locally / fail in CI)
from _require import REPO_ROOT, find_data_mirror, require

pytestmark = pytest.mark.gpu

SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "pyscript_app", "server", "shaders"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from a copy of the sources; install it into a fresh venv; return its paths."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TABGPT_SHADERS")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), "."],
         src, env)
    (wheel,) = (root / "dist").glob("tabgpt-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env).stdout.strip()
    Path(purelib, "tabgpt-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
         root, env)
    work = root / "work"  # the runs' working directory: neither the checkout nor the build folder
    work.mkdir()
    env["XDG_CACHE_HOME"] = str(root / "cache")
    return {"root": root, "venv": venv, "python": python, "tabgpt": venv / "bin" / "tabgpt", "work": work, "env": env,
            "purelib": Path(purelib)}


def test_the_wheel_carries_every_shader_and_uses_them(installed):
    probe = ("import json, pyscript_app, pyscript_app.gpu.registry as r;"
             "print(pyscript_app.__file__); print(r.shader_dir()); print(json.dumps(sorted(p.name for p in r.shader_dir().glob('*.wgsl'))))")
    out = _run([str(installed["python"]), "-c", probe], installed["work"], installed["env"]).stdout.splitlines()
    package_file, shader_dir, names = Path(out[0]), Path(out[1]), json.loads(out[2])
    assert package_file.is_relative_to(installed["purelib"]) and not package_file.is_relative_to(REPO_ROOT)
    assert shader_dir == installed["purelib"] / "pyscript_app" / "shaders"
    assert names == sorted(p.name for p in (REPO_ROOT / "shaders").glob("*.wgsl"))


def test_installed_bench_runs_the_gate_and_a_step(installed, gpu):  # noqa: F811
    out = _run([str(installed["tabgpt"]), "bench", "--backend", "gpu", "--models", "nano"], installed["work"],
               installed["env"], timeout=400).stdout
    gate = re.search(r"(\d+) passed, (\d+) failed", out)
    assert gate and int(gate[1]) > 40 and gate[2] == "0", out[-2000:]  # every kernel's parity case ran
    assert re.search(r"^nano +\d+\.\d+ +22 ", out, re.M), out[-2000:]  # the training step's row


def test_installed_train_runs_five_gpu_steps(installed, gpu):  # noqa: F811
    mirror = find_data_mirror()
    require(mirror is not None, "no data mirror (../shared/data or $TABGPT_DATA_MIRROR)")
    env = dict(installed["env"], TABGPT_DATA_MIRROR=str(mirror))
    out_dir = installed["root"] / "run"
    out = _run([str(installed["tabgpt"]), "train", "--dataset", "names", "--model", "nano", "--steps", "5",
                "--backend", "gpu", "--out", str(out_dir)], installed["work"], env).stdout
    assert "done: 5 steps" in out, out[-2000:]
    assert (out_dir / "checkpoint.tgpt").is_file() and (out_dir / "metrics.jsonl").is_file()
