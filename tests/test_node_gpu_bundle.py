"""benchmarks/node_gpu/bundle.py: the runner's runtime packed into one file and unpacked elsewhere.

Stand-ins keep it fast: a shell script for node (its `--version`), an `ldd` on PATH that reports
the libraries the test wants, small files for npm's megabytes. What it checks is the layout the
runner and the benchmark read, the manifest, and the one-line refusals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _require import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))

from benchmarks.node_gpu.bundle import (BundleError, PYODIDE_FILES, WEBGPU_FILES, make_bundle,  # noqa: E402
                                        node_libraries, open_bundle)

SCRIPT = REPO_ROOT / "benchmarks" / "node_gpu" / "bundle.py"


def fake_node_modules(root: Path) -> Path:
    for package, files in (("pyodide", PYODIDE_FILES), ("webgpu", WEBGPU_FILES)):
        for name in files:
            path = root / package / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"version": f"{package}-v"}) if name == "package.json" else name)
    return root


def fake_data(root: Path) -> Path:
    data = root / "py" / "data"
    data.mkdir(parents=True)
    (data / "index.json").write_text('{"datasets": {}}')
    (data / "names.train.bin").write_bytes(b"\x01\x02")
    return root


def fake_node(tmp_path: Path, monkeypatch, linked: str = "libc.so.6 => /lib/libc.so.6 (0x1)") -> Path:
    """A `node` that prints its version, and an `ldd` (first on PATH) that says it links `linked`."""
    node = tmp_path / "node"
    node.write_text("#!/bin/sh\necho v99.0.0\n")
    (tmp_path / "ldd").write_text(f"#!/bin/sh\necho '\t{linked}'\n")
    for path in (node, tmp_path / "ldd"):
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return node


def test_a_bundle_unpacks_to_the_paths_the_runner_reads(tmp_path, monkeypatch):
    node = fake_node(tmp_path, monkeypatch)
    manifest = make_bundle(tmp_path / "b.tar.xz", node, fake_node_modules(tmp_path / "nm"),
                           fake_data(tmp_path / "site"))
    assert manifest["webgpu"] == "webgpu-v" and manifest["pyodide"] == "pyodide-v"
    assert manifest["node"] == "v99.0.0" and manifest["bytes"] == (tmp_path / "b.tar.xz").stat().st_size
    assert manifest["node_libraries"] == ["libc.so.6"]
    paths = open_bundle(tmp_path / "b.tar.xz", tmp_path / "out")
    version = subprocess.run([str(paths.runtime), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "v99.0.0"  # still executable after the round trip
    assert all((paths.pyodide / n).is_file() for n in PYODIDE_FILES)
    assert (paths.webgpu / "dist/linux-x64/dawn.node").read_text() == "dist/linux-x64/dawn.node"
    assert (paths.data_root / "py/data/names.train.bin").read_bytes() == b"\x01\x02"
    assert json.loads((tmp_path / "out/bundle.json").read_text())["files"]["bin/node"] == node.stat().st_size


def test_missing_packages_and_non_bundles_are_refused_in_one_line(tmp_path, monkeypatch):
    node = fake_node(tmp_path, monkeypatch)
    (tmp_path / "nm").mkdir()
    with pytest.raises(BundleError, match=r"missing .*pyodide\.mjs.*run `npm ci`"):
        make_bundle(tmp_path / "b.tar.xz", node, tmp_path / "nm", fake_data(tmp_path / "site"))
    (tmp_path / "junk.tar.xz").write_bytes(b"not xz")
    with pytest.raises(BundleError, match="cannot unpack"):
        open_bundle(tmp_path / "junk.tar.xz", tmp_path / "out")


def test_a_node_that_links_its_own_libraries_is_refused(tmp_path, monkeypatch):
    # what Debian's own nodejs links: it would not run without its libnode package
    node = fake_node(tmp_path, monkeypatch, "libnode.so.108 => /usr/lib/libnode.so.108 (0x1)")
    with pytest.raises(BundleError, match=r"links libnode\.so\.108.*self-contained Node\.js"):
        node_libraries(node)


def test_the_command_line_reports_a_missing_node_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--node", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "b.tar.xz")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("bundle: no Node.js to pack"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
