"""Question: what does the GPU driver make of each pipeline the project creates (registers, spills, workgroup
memory), so that a kernel change is judged by the code the GPU runs, and not only by its timing?

Runs one training step per model under the Vulkan capture layer (benchmarks/probes/vk_capture_layer) and
names each captured pipeline by its kernel and overrides. These are the engine's own pipelines (under
Dawn, Tint's SPIR-V with the overrides substituted), compiled by the driver for the adapter at hand. Where the device has VK_KHR_pipeline_executable_properties (NVIDIA's driver has) each
line carries the driver's statistics (register count, local memory = spills and arrays kept in
memory, shared memory...).

    sh benchmarks/probes/vk_capture_layer/build.sh          # here: gcc + libvulkan-dev
    python3 benchmarks/probes/pipeline_stats_probe.py dawn CAPTURE_DIR OUT.json large [medium ...]
    TABGPT_SHADER_DIR=DIR python3 benchmarks/probes/pipeline_stats_probe.py ...   # a shader folder's variant

It sets the layer's environment itself (before the engine loads Vulkan), so run it as a script."""
import asyncio
import json
import os
import sys
from array import array
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def main(engine: str, capture: Path, out_json: Path, models: list[str]) -> None:
    capture.mkdir(parents=True, exist_ok=True)
    for stale in capture.glob("*.jsonl"):
        stale.unlink()
    os.environ["VK_ADD_LAYER_PATH"] = str(HERE / "vk_capture_layer")
    os.environ["VK_INSTANCE_LAYERS"] = "VK_LAYER_TABGPT_capture"
    os.environ["TABGPT_VK_CAPTURE_DIR"] = str(capture)
    import numpy as np
    from pyscript_app.config import TrainConfig
    from pyscript_app.gpu.native import open_device
    from pyscript_app.gpu.trainer_backend import GpuBackend

    lines = capture / "pipelines.jsonl"

    def count() -> int:
        return len(lines.read_text().splitlines()) if lines.exists() else 0

    ex = open_device(engine, shader_dir=os.environ.get("TABGPT_SHADER_DIR"))  # a variant folder, if given
    named: dict[int, dict] = {}  # captured pipeline line -> what the executor asked for
    make = ex._create_pipeline

    def traced(module, entry, layout, consts, name):
        pl = make(module, entry, layout, consts, name)
        named[count() - 1] = {"kernel": name, "entry": entry, "overrides": dict(consts)}
        return pl

    ex._create_pipeline = traced
    for model in models:
        tc = TrainConfig(model=model, batch=8, log_every=1000)
        mc = tc.model_cfg()
        be = GpuBackend(mc, tc, ex)
        asyncio.run(be.init(1))
        n = 8 * mc.block_size
        xa = array("H", np.random.default_rng(0).integers(0, mc.vocab_size, n).astype(np.uint16).tobytes())
        asyncio.run(be.step(xa, xa, 1e-3))
        asyncio.run(be.pop_losses())
    captured = [json.loads(s) for s in lines.read_text().splitlines()] if lines.exists() else []
    rows = []
    for i, c in enumerate(captured):
        who = named.get(i)
        if who is None:
            continue  # the engine's own pipelines
        stats = (c.get("executables") or [{}])[0]
        rows.append({**who, "module": c["module"], "statistics": stats})
        brief = {k: v for k, v in stats.items() if k != "internal_representations"}
        print(f"{who['kernel']:34s} {json.dumps({k: v for k, v in who['overrides'].items() if k in ('TM', 'TN', 'KGROUPS', 'SPLIT', 'DX_SPLIT', 'D', 'ROWS', 'WG', 'DG_COLS')})}")
        print(f"    module_{c['module']}.spv  {brief}")
    devices = (capture / "devices.jsonl").read_text() if (capture / "devices.jsonl").exists() else ""
    out_json.write_text(json.dumps({"engine": engine, "adapter": str(ex.adapter_info), "devices": devices,
                                    "models": models, "pipelines": rows}, indent=1))
    print(f"{len(rows)} of {len(captured)} captured pipelines named -> {out_json}")


if __name__ == "__main__":
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
