// reduce.wgsl — the mean of a vector into one slot of a small results buffer (the per-step loss).
//
// Math (numpy):  out[slot] = x[:n].mean()        x (n,) f32 (e.g. per-token losses, n = B*T)
// Why: the training loss of every step stays on the GPU in a ring of K slots (slot = step % K);
// the host reads the ring back once every few steps instead of reading each step's losses.
// One workgroup sums strided elements, then a tree; the order is fixed, so results are deterministic.
//
// Bindings (group 0, uniform last): 0 x (read), 1 out (read_write, > slot floats), 2 params
// Overrides: WG = 256 (a power of two for the tree reduction)
// Grid: (1, 1, 1)
// Entry points: mean_into_slot

override WG: u32 = 256u;

struct ReduceParams {
  n: u32,     // elements of x to average (> 0)
  slot: u32,  // index of out to write
};

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: ReduceParams;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn mean_into_slot(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < p.n; i += WG) { acc += x[i]; }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[p.slot] = red[0] / f32(p.n); }
}
