"""The native executor: engine selection, buffers, recording into one submission, caching."""

import asyncio
import struct

import numpy as np
import pytest

from _gpu import download, gpu, upload  # noqa: F401
from pyscript_app.gpu import native
from pyscript_app.gpu.executor import GpuUnavailable, run_sync

pytestmark = pytest.mark.gpu


def test_open_device_reports_engine_and_adapter(gpu):
    assert gpu.engine in ("dawn", "wgpu-native")
    assert gpu.adapter_info["engine"] == gpu.engine
    assert gpu.adapter_info["device"]


def test_auto_falls_back_when_dawn_is_missing(gpu, monkeypatch):
    """With Dawn unimportable (simulated, so this runs on every machine) auto picks wgpu-native."""
    monkeypatch.setitem(native.ENGINES, "dawn", "no_such_module_for_tabgpt_tests")
    assert native.open_device("auto").engine == "wgpu-native"
    with pytest.raises(GpuUnavailable, match="dawn"):
        native.open_device("dawn")
    with pytest.raises(ValueError):
        native.open_device("cuda")


def test_write_read_views_copy_clear(gpu):
    a = np.arange(200, dtype=np.float32)
    buf = upload(gpu, a)
    gpu.write(buf, np.float32([-1, -2]).tobytes(), offset=8)
    got = np.frombuffer(run_sync(gpu.read(buf.view(4, 16))), np.float32)
    np.testing.assert_array_equal(got, [1, -1, -2, 4])
    dst = upload(gpu, np.zeros(200, np.float32))
    gpu.copy(buf.view(0, 64), dst.view(256, 64))
    gpu.clear(buf.view(0, 16))
    np.testing.assert_array_equal(download(gpu, dst, (200,))[64:80], [0, 1, -1, -2] + list(range(4, 16)))
    np.testing.assert_array_equal(download(gpu, buf, (8,)), [0, 0, 0, 0, 4, 5, 6, 7])
    with pytest.raises(ValueError):
        gpu.write(buf, b"abc")
    with pytest.raises(ValueError):
        buf.view(0, 10_000)


def test_pool_reuses_released_buffers(gpu):
    a = gpu.alloc(1000)
    gpu.release(a)
    assert gpu.alloc(1000) is a
    assert gpu.alloc(1000) is not a
    assert gpu.alloc(1001).nbytes == 1004


def test_dispatch_validates_bindings(gpu):
    x = upload(gpu, np.zeros(512, np.float32))
    with pytest.raises(ValueError, match="takes 2 buffers"):
        gpu.dispatch("relu_forward", [x], {"n": 1})
    with pytest.raises(ValueError, match="multiple of 256"):
        gpu.dispatch("relu_forward", [x.view(4, 64), x.view(256, 64)], {"n": 1})
    with pytest.raises(KeyError):
        gpu.dispatch("relu_forward", [x, x.view(256, 256)], {"n": 1, "m": 2})


def _step(ex, bufs, n):
    """A small 'training step': four dependent dispatches in one pass (b = relu(a) + a, twice)."""
    a, b, c = bufs
    ex.dispatch("relu_forward", [a, b], {"n": n})
    ex.dispatch("add_inplace", [b, a], {"n": n})
    ex.dispatch("add", [a, b, c], {"n": n})
    ex.dispatch("relu_backward", [c, a, b], {"n": n})


def test_step_is_one_submission_and_replay_creates_nothing(gpu):
    n = 300
    a = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    bufs = (upload(gpu, a), upload(gpu, np.zeros(n, np.float32)), upload(gpu, np.zeros(n, np.float32)))
    gpu.submit()
    _step(gpu, bufs, n)
    before = dict(gpu.stats)
    _step(gpu, bufs, n)
    gpu.submit()
    after = dict(gpu.stats)
    assert after["dispatches"] - before["dispatches"] == 4
    assert after["submits"] - before["submits"] == 1, "both recorded steps went out in one submission"
    for key in ("pipelines", "bind_groups", "uniform_buffers", "buffers", "shader_modules", "passes"):
        assert after[key] == before[key], f"replaying the step created new {key}"
    c = a + np.maximum(a, 0) + a
    np.testing.assert_array_equal(download(gpu, bufs[1], (n,)), np.where(a > 0, c, 0))


def test_read_submits_recorded_work_first(gpu):
    x = upload(gpu, np.float32([-1, 2, -3, 4]))
    y = upload(gpu, np.zeros(4, np.float32))
    gpu.dispatch("relu_forward", [x, y], {"n": 4})
    submits = gpu.stats["submits"]
    np.testing.assert_array_equal(download(gpu, y, (4,)), [0, 2, 0, 4])
    assert gpu.stats["submits"] == submits + 1


def test_pipelines_cached_per_overrides(gpu):
    x = upload(gpu, np.float32(range(-500, 500)))
    y = upload(gpu, np.zeros(1000, np.float32))
    gpu.dispatch("relu_forward", [x, y], {"n": 1000}, overrides={"WG": 64})
    count = gpu.stats["pipelines"]
    gpu.dispatch("relu_forward", [x, y], {"n": 1000}, overrides={"WG": 64})
    gpu.dispatch("relu_forward", [x, y], {"n": 1000}, overrides={"WG": 128})
    assert gpu.stats["pipelines"] == count + 1
    np.testing.assert_array_equal(download(gpu, y, (1000,)), np.maximum(np.arange(-500, 500), 0))


def test_caller_owned_uniform_buffer_changes_between_steps(gpu):
    out = upload(gpu, np.zeros(8, np.float32))
    ub = gpu.uniform_buffer("fill")
    seen = []
    for value in (1.5, -2.0):
        gpu.write_uniform(ub, "fill", {"n": 8, "offset": 0, "key": 0, "scale": value})
        created = gpu.stats["uniform_buffers"]
        gpu.dispatch("fill", [out], ub, shape={"n": 8})
        seen.append(download(gpu, out, (8,))[3])
        assert gpu.stats["uniform_buffers"] == created
    assert seen == [1.5, -2.0]
    with pytest.raises(ValueError, match="shape="):
        gpu.dispatch("fill", [out], ub)


def test_read_is_awaitable(gpu):
    buf = gpu.upload(struct.pack("<4f", 1, 2, 3, 4))
    assert asyncio.run(gpu.read(buf, 8, offset=8)) == struct.pack("<2f", 3, 4)


def test_read_soon_sees_the_buffer_as_submitted_and_pools_its_staging(gpu):
    """read_soon's bytes are the target's after the work recorded before it, whatever runs after;
    awaiting maps a pooled staging buffer (one submission per read, the recorded work included)."""
    x = upload(gpu, np.float32([-1, 2, -3, 4]))
    y = upload(gpu, np.zeros(4, np.float32))
    gpu.dispatch("relu_forward", [x, y], {"n": 4})
    submits = gpu.stats["submits"]
    first = gpu.read_soon(y.view(4, 8))
    assert gpu.stats["submits"] == submits + 1
    gpu.write(y, np.float32([7, 7, 7, 7]).tobytes())
    gpu.dispatch("relu_forward", [y, x], {"n": 4})
    second = gpu.read_soon(x)
    assert asyncio.run(_await(second)) == np.float32([7, 7, 7, 7]).tobytes()
    assert asyncio.run(_await(first)) == np.float32([2, 0]).tobytes()
    buffers = gpu.stats["buffers"]
    assert asyncio.run(_await(gpu.read_soon(y.view(0, 8)))) == np.float32([7, 7]).tobytes()
    assert gpu.stats["buffers"] == buffers  # the 8-byte staging buffer came from the pool
    with pytest.raises(RuntimeError, match="once"):
        asyncio.run(_await(first))


async def _await(read):
    return await read


def test_replayed_plan_computes_like_a_fresh_recording(gpu):
    # plan: y = relu(x); clear z; z += y (add_inplace) -- replayed on new contents of x
    n = 257
    x, y, z = (upload(gpu, np.zeros(n, np.float32)) for _ in range(3))
    gpu.begin_plan()
    gpu.dispatch("relu_forward", [x, y], {"n": n})
    gpu.clear(z)
    gpu.dispatch("add_inplace", [z, y], {"n": n})
    gpu.copy(y, x, 8)  # x[0:2] = y[0:2] after the work above
    plan = gpu.end_plan()
    gpu.submit()
    assert plan.dispatches == 2 and [item[0] for item in plan.items] == ["dispatch", "clear", "dispatch", "copy"]
    for seed in (1, 2):
        a = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
        gpu.write(x, a.tobytes())
        before = dict(gpu.stats)
        gpu.replay(plan)
        gpu.submit()
        after = dict(gpu.stats)
        assert (after["dispatches"] - before["dispatches"], after["clears"] - before["clears"],
                after["copies"] - before["copies"]) == (2, 1, 1)
        for key in ("pipelines", "bind_groups", "uniform_buffers", "buffers"):
            assert after[key] == before[key], f"replay created new {key}"
        np.testing.assert_array_equal(download(gpu, z, (n,)), np.maximum(a, 0))
        np.testing.assert_array_equal(download(gpu, x, (n,))[:2], np.maximum(a[:2], 0))


def test_plan_capture_misuse_raises(gpu):
    with pytest.raises(RuntimeError, match="without begin_plan"):
        gpu.end_plan()
    gpu.begin_plan()
    with pytest.raises(RuntimeError, match="already"):
        gpu.begin_plan()
    plan = gpu.end_plan()
    gpu.begin_plan()
    with pytest.raises(RuntimeError, match="while capturing"):
        gpu.replay(plan)
    gpu.end_plan()
