// bias.wgsl — the gradient of a linear layer's bias (reference/ops_gpt2.py linear_backward's db).
// The forward's bias is added in the matmul epilogue (matmul.wgsl's matmul_forward_bias entries);
// its gradient is the column sum of the layer's upstream gradient, every row having added it once.
//
// Math (numpy):  bias_backward: db = dy.sum(axis=0)        dy (N,M) -> db (M,)
// accumulate = 0 overwrites db, 1 adds into it. f32, row-major.
// Design: layernorm/rmsnorm_backward's column sums: each workgroup owns COLS columns; invocation lid
// takes column c0 + lid % COLS and every (WG / COLS)-th row from lid / COLS, and the row lanes'
// partial sums are added by a tree in workgroup memory (a fixed order: deterministic). (One
// invocation per column walking all N rows was latency-bound for rmsnorm's dg on an H200.)
//
// Bindings (group 0, uniform last): 0 dy (read), 1 db (read_write), 2 params
// Overrides: WG = 64 (a power of two, at least COLS); COLS = 8 (columns per workgroup, a power of two)
// Grid: ceil(M / COLS) workgroups: grid_1d(ceil(M / COLS) * WG, WG)
// Entry points: bias_backward

override WG: u32 = 64u;
override COLS: u32 = 8u;

struct BiasParams {
  N: u32,
  M: u32,
  accumulate: u32,
};

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<uniform> p: BiasParams;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn bias_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let lanes = WG / COLS;
  let c = (wid.y * nwg.x + wid.x) * COLS + lid % COLS;
  var acc = 0.0;
  if (c < p.M) {
    for (var n = lid / COLS; n < p.N; n += lanes) { acc += dy[n * p.M + c]; }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = lanes / 2u; s > 0u; s = s / 2u) {
    if (lid / COLS < s) { red[lid] = red[lid] + red[lid + s * COLS]; }
    workgroupBarrier();
  }
  if (lid < COLS && c < p.M) {
    if (p.accumulate != 0u) { db[c] = db[c] + red[lid]; } else { db[c] = red[lid]; }
  }
}
