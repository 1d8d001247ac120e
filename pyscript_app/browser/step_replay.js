// A recorded step (gpu/executor.py Plan) replayed by JavaScript: the browser host's one call per step.
//
//   const plan = new StepPlan(device, pipelines, bindGroups, buffers, ops, writes, dynamic);
//   plan.run(packet);                                   // writes + every command + ONE submit
//   const bytes = await plan.runAndRead(packet, buffer, offset, nbytes);   // the same, then a read-back
//   const later = readSoon(device, buffer, offset, nbytes);   // a copy submitted NOW, mapped when done
//
// Python (browser/webgpu_executor.py) hands over, once per plan:
//   pipelines, bindGroups, buffers  arrays of GPUComputePipeline / GPUBindGroup / GPUBuffer
//   ops      u32 values (any typed array of their bytes), 6 numbers per command, in record order:
//              [0, pipeline, bindGroup, x, y, z]                         dispatch (shared compute pass)
//              [1, buffer, offset, nbytes, 0, 0]                         clearBuffer
//              [2, src, srcOffset, dst, dstOffset, nbytes]               copyBufferToBuffer
//   writes   u32 values, 4 numbers per queue write: [buffer, bufferOffset, packetOffset, nbytes]
//   dynamic  u32 values, 2 numbers per copy whose source offset changes per step:
//              [op index, packetOffset of a u32 holding the source offset]
// and, every step, ONE Uint8Array `packet`: the bytes of every write (tokens, the per-step uniforms)
// followed by the dynamic offsets. Consecutive dispatches share one compute pass; a clear or a copy
// ends it; setPipeline only when the pipeline changes: the same commands, in the same order, as the
// Python replay (Executor.replay), so the GPU computes the same bits.

const DISPATCH = 0, CLEAR = 1, COPY = 2;

// A copy of typed array `a` as u32 values: its bytes reinterpreted (Python sends little-endian bytes).
function u32(a) {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
  return new Uint32Array(bytes.buffer);
}

export class StepPlan {
  constructor(device, pipelines, bindGroups, buffers, ops, writes, dynamic) {
    this.device = device;
    this.queue = device.queue;
    this.pipelines = Array.from(pipelines);
    this.bindGroups = Array.from(bindGroups);
    this.buffers = Array.from(buffers);
    this.ops = u32(ops);
    this.writes = u32(writes);
    this.dynamic = u32(dynamic);
    this.staging = new Map();  // size -> idle MAP_READ buffers
  }

  encode(packet) {
    const { queue, buffers, ops, writes, dynamic, pipelines, bindGroups } = this;
    for (let i = 0; i < writes.length; i += 4) {
      queue.writeBuffer(buffers[writes[i]], writes[i + 1], packet, writes[i + 2], writes[i + 3]);
    }
    let srcOffsets = null;
    if (dynamic.length) {
      const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
      srcOffsets = new Map();
      for (let i = 0; i < dynamic.length; i += 2) srcOffsets.set(dynamic[i], view.getUint32(dynamic[i + 1], true));
    }
    const encoder = this.device.createCommandEncoder();
    let pass = null, current = -1;
    for (let op = 0, i = 0; i < ops.length; op += 1, i += 6) {
      const kind = ops[i];
      if (kind === DISPATCH) {
        if (pass === null) { pass = encoder.beginComputePass(); current = -1; }
        if (ops[i + 1] !== current) { current = ops[i + 1]; pass.setPipeline(pipelines[current]); }
        pass.setBindGroup(0, bindGroups[ops[i + 2]]);
        pass.dispatchWorkgroups(ops[i + 3], ops[i + 4], ops[i + 5]);
        continue;
      }
      if (pass !== null) { pass.end(); pass = null; }
      if (kind === CLEAR) {
        encoder.clearBuffer(buffers[ops[i + 1]], ops[i + 2], ops[i + 3]);
      } else {
        const src = srcOffsets !== null && srcOffsets.has(op) ? srcOffsets.get(op) : ops[i + 2];
        encoder.copyBufferToBuffer(buffers[ops[i + 1]], src, buffers[ops[i + 3]], ops[i + 4], ops[i + 5]);
      }
    }
    if (pass !== null) pass.end();
    return encoder;
  }

  run(packet) {
    this.queue.submit([this.encode(packet).finish()]);
  }

  async runAndRead(packet, buffer, offset, nbytes) {
    const size = Math.ceil(nbytes / 4) * 4;
    let idle = this.staging.get(size);
    if (idle === undefined) { idle = []; this.staging.set(size, idle); }
    const staging = idle.pop() ?? this.device.createBuffer(
      { size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: "step read staging" });
    const encoder = this.encode(packet);
    encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
    this.queue.submit([encoder.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      staging.destroy();
      throw e;
    }
    const out = staging.getMappedRange(0, size).slice(0, nbytes);
    staging.unmap();
    idle.push(staging);
    return out;
  }
}

// The bytes of buffer[offset, offset + nbytes) as the work submitted so far leaves them: the copy is
// submitted now, so steps submitted after this call keep the GPU busy while the page awaits it (the
// playground's loss read-backs: browser/webgpu_executor.py read_soon).
export function readSoon(device, buffer, offset, nbytes) {
  const size = Math.ceil(nbytes / 4) * 4;
  const staging = device.createBuffer(
    { size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: "read soon staging" });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  return staging.mapAsync(GPUMapMode.READ, 0, size).then(
    () => { const out = staging.getMappedRange(0, size).slice(0, nbytes); staging.destroy(); return out; },
    (e) => { staging.destroy(); throw e; });
}
