"""Question: where does a training step's GPU time go, kernel by kernel (what to speed up next for the
`large` step's target of 1.0x PyTorch)?

GPU time per dispatch of one training step: each item of the step's plan replayed alone, 20 times in
one submission, summed per kernel (and tile); the whole step replayed for comparison. Each figure is
split in two: the host's recording of the 20 replays (Python and the API calls, before the submit),
and the GPU's part, from the submit to the read-back that waits for it, less that read-back's own
cost on an idle queue (the median of 5). The per-kernel "wall" figure is their sum.

    python3 benchmarks/probes/step_profile.py dawn|wgpu-native OUT.json MODEL [MODEL ...] [--mixed]

--mixed profiles the mixed-precision step (Dawn with subgroup matrices): matmul_coop's rows are told
apart by block, layout (A_T/B_T), epilogue and causal mode.

Isolated timings miss the overlap and cache effects of the real sequence, and the GPU idles between
them: on an H100 some items came out up to 1.8x their cost inside the step
(benchmarks/results/normed-data-probe-h100-dawn-2026-12-07.json). So each kernel also gets its
marginal cost: the whole step with that kernel's items doubled, less the whole step, replayed back
to back. Rows are sorted by it; their sum is close to the step's GPU time."""
import asyncio, sys, time, json, collections
import numpy as np
sys.path.insert(0, '.')
from array import array
from pyscript_app.config import TrainConfig
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.gpu.native import open_device
from pyscript_app.gpu.executor import Plan, run_sync

mixed = '--mixed' in sys.argv
argv = [a for a in sys.argv if a != '--mixed']
engine = argv[1]; out = {}
ex = open_device(engine, mixed=mixed)
for name in argv[3:]:
    tc = TrainConfig(model=name, batch=8, log_every=1000, backend='gpu', precision='mixed' if mixed else 'fp32')
    mc = tc.model_cfg()
    be = GpuBackend(mc, tc, ex)
    asyncio.run(be.init(1))
    N = 8 * mc.block_size
    xa = array('H', np.random.default_rng(0).integers(0, mc.vocab_size, N).astype(np.uint16).tobytes())
    asyncio.run(be.step(xa, xa, 1e-3)); asyncio.run(be.pop_losses())
    def label(kernel, ov):  # e.g. matmul_backward_split_v4 64x64r4, matmul_forward_residual_v4 32x32r4k4
        if kernel == 'matmul_coop':  # e.g. matmul_coop 64x64 A_T epi0 causal2
            bm, bn = ov['WY'] * ov['RT'] * 16, ov['WX'] * ov['CT'] * 16
            lay = 'A_T' if ov.get('A_T') else 'B_T' if ov.get('B_T') else 'AB'
            return f"{kernel} {bm}x{bn}k{ov['BK']} {lay} epi{ov.get('EPI', 0)} split{ov.get('KSPLIT', 1)} causal{ov.get('CAUSAL', 0)}"
        if 'TM' not in ov:
            return kernel
        extra = (f"r{ov['RPI']}" if ov.get('RPI', 8) != 8 else '') + (f"k{ov['KGROUPS']}" if ov.get('KGROUPS', 1) != 1 else '')
        return f"{kernel} {ov['TM']}x{ov['TN']}{extra}"
    names = {pl: label(key[0], dict(key[1])) for key, pl in ex._pipelines.items()}
    plan = be._step_plan
    reps = 20

    def idle_read():  # a read-back's own cost on an idle queue
        t = time.perf_counter(); ex.submit(); run_sync(ex.read(be.params, 4)); return time.perf_counter() - t

    def timed(p):  # (host ms, GPU ms) per replay of plan p, `reps` replays in one submission
        t0 = time.perf_counter()
        for _ in range(reps): ex.replay(p)
        t1 = time.perf_counter()
        ex.submit(); run_sync(ex.read(be.params, 4))
        t2 = time.perf_counter()
        return (t1 - t0) / reps * 1e3, max(0.0, t2 - t1 - idle) / reps * 1e3

    idle = sorted(idle_read() for _ in range(5))[2]
    gpu, host = collections.defaultdict(float), collections.defaultdict(float); counts = collections.Counter()
    for i, item in enumerate(plan.items):
        one = Plan((item,))
        ex.replay(one); ex.submit(); run_sync(ex.read(be.params, 4))
        h, g = timed(one)
        label = names.get(item[1], item[0]) if item[0] == 'dispatch' else item[0]
        gpu[label] += g; host[label] += h; counts[label] += 1
    step_host, step_gpu = timed(plan)  # the whole step, replayed
    # the marginal cost of each kernel inside the running step: the step with that kernel's items
    # doubled, less the step (median of 3 each), per item; the GPU never idles between items here
    label_of = lambda it: names.get(it[1], it[0]) if it[0] == 'dispatch' else it[0]  # noqa: E731
    marginal = {}
    for k in gpu:
        doubled = Plan(tuple(x for it in plan.items for x in ((it, it) if label_of(it) == k else (it,))))
        base = sorted(timed(plan)[1] for _ in range(3))[1]
        more = sorted(timed(doubled)[1] for _ in range(3))[1]
        marginal[k] = (more - base)
    rows = sorted(gpu, key=lambda k: -marginal[k])
    total_gpu, total_host = sum(gpu.values()), sum(host.values())
    print(f"== {name}: isolated dispatches GPU {total_gpu:.3f} ms (host {total_host:.3f}); whole step replayed "
          f"GPU {step_gpu:.3f} ms (host {step_host:.3f}); read-back on an idle queue {idle * 1e3:.3f} ms")
    print(f"   sum of marginal costs {sum(marginal.values()):.3f} ms")
    for k in rows: print(f"  {k:40s} {counts[k]:3d}  marginal {marginal[k]:8.3f} ms  isolated GPU {gpu[k]:8.3f} ms  host {host[k]:7.3f} ms")
    out[name] = {"sum_gpu_ms": total_gpu, "sum_host_ms": total_host, "step_gpu_ms": step_gpu, "step_host_ms": step_host,
                 "sum_ms": total_gpu + total_host, "step_ms": step_gpu + step_host, "idle_read_ms": idle * 1e3,
                 "sum_marginal_ms": sum(marginal.values()),
                 "per_kernel": {k: {"count": counts[k], "marginal_ms": marginal[k], "gpu_ms": gpu[k], "host_ms": host[k]}
                                for k in rows}}
json.dump(out, open(argv[2], 'w'), indent=1)
