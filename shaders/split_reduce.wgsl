// split_reduce.wgsl — adds the dw parts of the split backward matmuls into the gradients.
//
// Math (numpy):  out[i] = out[i] + parts[0 * stride + i] + ... + parts[(count - 1) * stride + i],  i < n
//   out (n,): a span of the padded gradient buffer (gpu/layout.py) holding every split weight's part 0
//   parts: count blocks of `stride` floats, block s - 1 holding part s of each split weight at that
//   weight's offset in the span (gpu/model_ops.py); elements no split weight owns stay 0 there, so the
//   norm gains in between and the padding get + 0.0 (unchanged).
// Why: matmul_backward_split (matmul.wgsl) cuts dw's long inner sum into parts so that a big GPU has
// enough workgroups; one add_parts per training step, after the whole backward, folds them back.
// The adds run in part order, so results are deterministic.
//
// Bindings (group 0, uniform last): 0 parts (read), 1 out (read_write), 2 params
// Overrides: WG = 256
// Grid: grid_1d(n, WG) (flat index (wid.y * num_workgroups.x + wid.x) * WG + lid)
// Entry points: add_parts

override WG: u32 = 256u;

struct AddPartsParams {
  n: u32,       // elements of out
  count: u32,   // blocks of parts to add
  stride: u32,  // floats between two blocks of parts (>= n)
};

@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: AddPartsParams;

@compute @workgroup_size(WG)
fn add_parts(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;
  if (i >= p.n) { return; }
  var v = out[i];
  for (var s = 0u; s < p.count; s++) { v = v + parts[s * p.stride + i]; }
  out[i] = v;
}
