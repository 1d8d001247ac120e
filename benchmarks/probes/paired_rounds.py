"""Question: do the f32 GEMMs and the training steps get faster when each software-pipelined k loop runs
two k-slices per iteration, each on a workgroup buffer the compiler knows (gemm_staging_probe's PAIRLOOP;
its PAIR, the same written out, ran the stand-alone GEMM 5 % faster on an H100)?

Writes a candidate shader folder: a copy of shaders/ in which every k loop of the f32 kernels (matmul.wgsl,
matmul_vec4.wgsl, matmul_tiles.wgsl) of the form

    for (var t = 0u; t < rounds; t++) {
      ... buffer (t & 1u) multiplied, the next slice stored into buffer ((t + 1u) & 1u) ...
      workgroupBarrier();
    }

becomes

    for (var t0 = 0u; t0 < rounds; t0 += 2u) {
      for (var h = 0u; h < 2u; h++) {
        let t = t0 + h;
        if (t < rounds) {
          ... buffer h multiplied, the next slice stored into buffer (1u - h) ...
          workgroupBarrier();
        }
      }
    }

(t0 is even, so t & 1 = h: the results are the same bits; `rounds` is uniform, so the barrier stays in
uniform control flow). Then time the two folders through the project's dispatches:

    python3 benchmarks/probes/paired_rounds.py NEW_DIR
    python3 benchmarks/probes/shader_dirs_probe.py dawn OUT.json shaders NEW_DIR

and check the numbers on any adapter by running the kernel tests on a copy of the repository whose
shaders/ is NEW_DIR (tests/test_kernels_matmul*.py)."""
import re
import shutil
import sys
from pathlib import Path

SHADERS = Path(__file__).resolve().parents[2] / "shaders"
# each f32 kernel file and how many k loops of the form above it must hold (a changed kernel that no longer
# matches fails loudly rather than yielding a folder that silently times the committed loops)
LOOPS = {"matmul.wgsl": 1, "matmul_vec4.wgsl": 3, "matmul_tiles.wgsl": 2}

LOOP = re.compile(r"^(?P<ind> *)for \(var t = 0u; t < (?P<n>\w+); t\+\+\) \{\n"
                  r"(?P<body>(?:(?P=ind)  .*\n)+?)"
                  r"(?P=ind)  workgroupBarrier\(\);\n"
                  r"(?P=ind)\}\n", re.M)


def paired(m: re.Match) -> str:
    """The loop of match `m` as an outer loop over pairs of rounds and an inner loop over the pair."""
    ind, n = m["ind"], m["n"]
    body = m["body"].replace("((t + 1u) & 1u)", "(1u - h)").replace("(t + 1u) & 1u", "1u - h")
    body = body.replace("(t & 1u)", "h").replace("t & 1u", "h")
    assert "& 1u" not in body, body  # every buffer index was rewritten
    inner = "".join("    " + line + "\n" for line in body.splitlines())  # two levels deeper
    return (f"{ind}for (var t0 = 0u; t0 < {n}; t0 += 2u) {{\n"
            f"{ind}  for (var h = 0u; h < 2u; h++) {{\n"
            f"{ind}    let t = t0 + h;\n"
            f"{ind}    if (t < {n}) {{\n"
            f"{inner}"
            f"{ind}      workgroupBarrier();\n"
            f"{ind}    }}\n"
            f"{ind}  }}\n"
            f"{ind}}}\n")


def rewrite(source: str, expected: int, name: str) -> str:
    """`source` with its `expected` k loops paired; raises if it holds another number of them."""
    out, count = LOOP.subn(paired, source)
    if count != expected:
        raise SystemExit(f"{name}: {count} k loops of the expected form, not {expected}")
    return out


def write_candidate(new_dir: Path) -> None:
    shutil.copytree(SHADERS, new_dir)
    for name, expected in LOOPS.items():
        path = new_dir / name
        path.write_text(rewrite(path.read_text(), expected, name))


if __name__ == "__main__":
    if len(sys.argv) != 2 or Path(sys.argv[1]).exists():
        raise SystemExit("usage: paired_rounds.py NEW_DIR (a folder that does not exist yet)")
    write_candidate(Path(sys.argv[1]))
