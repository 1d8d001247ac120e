"""What runner.mjs needs on a machine with a GPU but no Node.js, no npm and no network, as ONE file.

    python benchmarks/node_gpu/bundle.py [--out .node_gpu/bundle.tar.xz] [--node PATH]   # after `npm ci`

The bundle (an xz tarball, ~35 MiB; every path below is inside it):

    bin/node                              the Node.js that runs the runner (self-contained: it may link
                                          only the C/C++ runtime libraries, BASE_LIBRARIES)
    webgpu/{package.json,index.js,dist/linux-x64/dawn.node}      npm `webgpu` (Dawn), Linux x86-64 only
    pyodide/{PYODIDE_FILES}                npm `pyodide`, what loadPyodide reads
    site/py/data/                          the site's data sets (index.json + token files), as the site
                                          build writes them (site_src/hooks/datasets.py)
    bundle.json                            versions, sizes and the Node binary's libraries

    paths = open_bundle(".node_gpu/bundle.tar.xz", into)   # unpacked: RuntimePaths of the files above
    paths = local_paths(repo, engine, data_root)          # the same from node_modules/ and PATH

Data sets are prepared from the registry (the user cache, a download, or $TABGPT_DATA_MIRROR).
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / ".node_gpu" / "bundle.tar.xz"
PYODIDE_FILES = ("package.json", "pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json")
WEBGPU_FILES = ("package.json", "index.js", "dist/linux-x64/dawn.node")
DENO = "node_modules/@deno/linux-x64-glibc/deno"
# What a Node.js binary may link and still run on another Linux x86-64 with glibc (and libstdc++).
BASE_LIBRARIES = ("linux-vdso", "ld-linux", "libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so",
                  "libstdc++.so", "libgcc_s.so")
DATASETS = ("names", "shakespeare")


class BundleError(Exception):
    """A missing or unusable input; the message is one line."""


@dataclass(frozen=True)
class RuntimePaths:
    runtime: Path  # node (dawn-node) or deno (deno-builtin)
    pyodide: Path
    webgpu: Path
    data_root: Path  # holds py/data/index.json: the runner's data_url


def site_data(data_root: Path, names=DATASETS) -> Path:
    """Write the site's py/data/ (index.json and token files) under data_root with the site build's
    own function; returns data_root."""
    hooks = str(REPO / "site_src" / "hooks")
    sys.path[:0] = [p for p in (str(REPO), hooks) if p not in sys.path]
    from datasets import write_site_data  # site_src/hooks/datasets.py
    from mkdocs.exceptions import PluginError

    try:
        write_site_data(data_root / "py" / "data", names=tuple(names))
    except PluginError as e:
        raise BundleError(str(e)) from None
    return data_root


def node_libraries(node: Path) -> list[str]:
    """The shared libraries `node` links (ldd), BundleError when one is outside BASE_LIBRARIES."""
    try:
        out = subprocess.run(["ldd", str(node)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BundleError(f"cannot list the libraries of {node}: {e}") from None
    libs = [line.split()[0] for line in out.splitlines() if line.strip()]
    extra = [lib for lib in libs if not Path(lib).name.startswith(BASE_LIBRARIES) and "statically linked" not in out]
    if extra:
        raise BundleError(f"{node} links {', '.join(extra)}: it would not run elsewhere; give --node a "
                          "self-contained Node.js (nodejs.org's or NodeSource's build)")
    return libs


def gather(node: Path, node_modules: Path, data_root: Path) -> dict[str, Path]:
    """{path in the bundle: file here}, BundleError naming what is missing."""
    files = {"bin/node": node}
    files.update({f"pyodide/{n}": node_modules / "pyodide" / n for n in PYODIDE_FILES})
    files.update({f"webgpu/{n}": node_modules / "webgpu" / n for n in WEBGPU_FILES})
    data = data_root / "py" / "data"
    files.update({f"site/py/data/{p.name}": p for p in sorted(data.glob("*")) if p.is_file()})
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise BundleError(f"missing {', '.join(missing)} (run `npm ci` in the repository root)")
    return files


def write_bundle(out: Path, files: dict[str, Path], manifest: dict, preset: int = 6) -> int:
    """Write the tarball (files, then bundle.json); returns its size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w:xz", preset=preset) as tar:
        for name, path in files.items():
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if name == "bin/node" else 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
        blob = json.dumps(manifest, indent=1).encode() + b"\n"
        info = tarfile.TarInfo("bundle.json")
        info.size, info.mode = len(blob), 0o644
        tar.addfile(info, io.BytesIO(blob))
    os.replace(tmp, out)
    return out.stat().st_size


def make_bundle(out: Path, node: Path, node_modules: Path, data_root: Path, preset: int = 6) -> dict:
    """Pack node, webgpu, pyodide and the data under data_root into `out`; returns the manifest."""
    libs = node_libraries(node)
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    files = gather(node, node_modules, data_root)

    def package_version(name: str) -> str:
        return json.loads((node_modules / name / "package.json").read_text())["version"]

    manifest = {
        "node": version, "node_libraries": libs, "webgpu": package_version("webgpu"),
        "pyodide": package_version("pyodide"), "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {name: path.stat().st_size for name, path in files.items()},
    }
    manifest["bytes"] = write_bundle(out, files, manifest, preset)
    return manifest


def open_bundle(bundle: Path, into: Path) -> RuntimePaths:
    """Unpack `bundle` into `into` (a fresh folder); BundleError when it is not a bundle."""
    try:
        with tarfile.open(bundle, "r:xz") as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError, lzma.LZMAError) as e:
        raise BundleError(f"cannot unpack {bundle}: {e}") from None
    if not (into / "bundle.json").is_file():
        raise BundleError(f"{bundle} is not a node_gpu bundle (no bundle.json)")
    (into / "bin" / "node").chmod(0o755)
    return RuntimePaths(into / "bin" / "node", into / "pyodide", into / "webgpu", into / "site")


def local_paths(repo: Path, engine: str, data_root: Path) -> RuntimePaths:
    """The runtime from PATH (node) or node_modules (deno), the packages from node_modules."""
    runtime = shutil.which("node") if engine == "dawn-node" else repo / DENO
    if runtime is None or not Path(runtime).is_file():
        raise BundleError("no Node.js on PATH (install it, or pass --bundle)" if engine == "dawn-node"
                          else f"no {repo / DENO} (run `npm ci` in the repository root)")
    return RuntimePaths(Path(runtime), repo / "node_modules" / "pyodide", repo / "node_modules" / "webgpu", data_root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Pack runner.mjs's runtime into one file (see the module's doc).")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--node", type=Path, default=None, help="the Node.js to pack (default: node on PATH)")
    ap.add_argument("--node-modules", type=Path, default=REPO / "node_modules")
    args = ap.parse_args(argv)
    node = args.node or (Path(shutil.which("node")) if shutil.which("node") else None)
    try:
        if node is None or not node.is_file():
            raise BundleError("no Node.js to pack: put node on PATH or pass --node")
        with tempfile.TemporaryDirectory() as tmp:
            manifest = make_bundle(args.out, node.resolve(), args.node_modules, site_data(Path(tmp)))
    except BundleError as e:
        print(f"bundle: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {manifest['bytes'] / 2**20:.1f} MiB (node {manifest['node']}, webgpu {manifest['webgpu']}, "
          f"pyodide {manifest['pyodide']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
