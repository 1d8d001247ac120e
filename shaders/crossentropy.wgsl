// crossentropy.wgsl — fused softmax + cross-entropy: the loss and its gradient in one pass over
// the logits (reference/ops.py crossentropy_forward_backward).
//
// Math (numpy), per row n with l = logits[n] (V,):
//   lse       = log(sum(exp(l - max(l)))) + max(l)              (max subtracted: no overflow)
//   losses[n] = lse - l[targets[n]]                             (nats)
//   dlogits[n] = (softmax(l) - onehot(targets[n])) / N          = d(mean(losses)) / dlogits
// Shapes: logits, dlogits (N,V) f32; targets (N,) u32 (< V); losses (N,) f32.
// crossentropy_forward writes only the losses (evaluation).
//
// Bindings (group 0, uniform last):
//   crossentropy_forward_backward: 0 logits (read), 1 targets (read u32), 2 losses (read_write),
//                                  3 dlogits (read_write), 4 params
//   crossentropy_forward:          0 logits (read), 1 targets (read u32), 2 losses (read_write), 3 params
// Overrides: WG = 256 (invocations per row; a power of two for the tree reductions)
// Grid: one workgroup per row: grid_1d(N * WG, WG)
// Entry points: crossentropy_forward_backward, crossentropy_forward

override WG: u32 = 256u;

struct CrossentropyParams {
  N: u32,
  V: u32,
};

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<uniform> p4: CrossentropyParams;  // forward_backward
@group(0) @binding(3) var<uniform> p3: CrossentropyParams;  // forward

var<workgroup> red: array<f32, WG>;

fn workgroup_max(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

// Row statistics (max, sum of exp(l - max)); every invocation of the workgroup gets both.
fn row_stats(lid: u32, base: u32, V: u32, valid: bool) -> vec2<f32> {
  var m = bitcast<f32>(0xff7fffffu);  // -FLT_MAX, exact (a decimal literal may round past it)
  if (valid) { for (var v = lid; v < V; v += WG) { m = max(m, logits[base + v]); } }
  let row_max = workgroup_max(lid, m);
  var s = 0.0;
  if (valid) { for (var v = lid; v < V; v += WG) { s += exp(logits[base + v] - row_max); } }
  return vec2<f32>(row_max, workgroup_sum(lid, s));
}

@compute @workgroup_size(WG)
fn crossentropy_forward_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
  let n = wid.y * nwg.x + wid.x;
  let V = p4.V;
  let valid = n < p4.N;  // no early return before the barriers
  let base = n * V;
  let st = row_stats(lid, base, V, valid);
  if (!valid) { return; }
  let t = targets[n];
  if (lid == 0u) { losses[n] = log(st.y) + st.x - logits[base + t]; }
  let inv_sum = 1.0 / st.y;
  let inv_n = 1.0 / f32(p4.N);
  for (var v = lid; v < V; v += WG) {
    let prob = exp(logits[base + v] - st.x) * inv_sum;
    dlogits[base + v] = (prob - select(0.0, 1.0, v == t)) * inv_n;
  }
}

@compute @workgroup_size(WG)
fn crossentropy_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let n = wid.y * nwg.x + wid.x;
  let valid = n < p3.N;
  let base = n * p3.V;
  let st = row_stats(lid, base, p3.V, valid);
  if (valid && lid == 0u) { losses[n] = log(st.y) + st.x - logits[base + targets[n]]; }
}
