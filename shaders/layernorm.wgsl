// layernorm.wgsl — LayerNorm forward and backward, GPT-2's norm (reference/ops_gpt2.py
// layernorm_forward / layernorm_backward).
//
// Math (numpy):
//   layernorm_forward:  mean = x.mean(axis=1);  xc = x - mean[:, None]
//                       rstd = 1 / sqrt((xc * xc).sum(axis=1) / C + eps);  y = xc * rstd[:, None] * w + b
//   layernorm_backward: xhat = (x - mean[:, None]) * rstd[:, None];  dxhat = dy * w
//                       dx = (dxhat - dxhat.mean(axis=1)[:, None] - xhat * (dxhat * xhat).mean(axis=1)[:, None])
//                            * rstd[:, None]
//                       dw = (dy * xhat).sum(axis=0);  db = dy.sum(axis=0)
// Shapes: x, y, dy, dx (N,C); w, b, dw, db (C,); mean, rstd (N,) kept from the forward for the
// backward. f32. The variance is taken from the centred values (two passes over the row), as the
// reference does: mean(x^2) - mean^2 cancels badly in f32 when |mean| >> std.
// accumulate = 1 makes the backward ADD into dx (the norm of a pre-LN block feeds a branch whose
// gradient is summed into the residual stream's); accumulate = 0 overwrites dx. dw and db are always
// overwritten, and so are the forward's outputs.
// dy_parts (backward; the forward ignores it): dy is the sum of that many (N,C) blocks, one after the
// other in the dy binding, added in block order (a split matmul's dx parts, as rmsnorm.wgsl). 1: dy.
// The design is rmsnorm.wgsl's: one workgroup per row, tree sums in workgroup memory; the backward's
// dw and db column sums in the same dispatch as dx.
//
// Bindings (group 0, uniform last):
//   layernorm_forward:  0 x (read), 1 w (read), 2 b (read), 3 y (read_write), 4 mean (read_write),
//                       5 rstd (read_write), 6 params
//   layernorm_backward: 0 dy (read, dy_parts x (N,C)), 1 x (read), 2 w (read), 3 mean (read),
//                       4 rstd (read), 5 dx (read_write), 6 dw (read_write), 7 db (read_write), 8 params
// Overrides: WG = 64 (invocations per row; a power of two, at least DG_COLS, for the reductions);
//   DG_COLS = 8 (backward: dw/db columns per workgroup, a power of two; WG / DG_COLS row lanes each)
// Grid: forward: one workgroup per row, grid_1d(N * WG, WG);
//       backward: N row workgroups (dx) then ceil(C / DG_COLS) column workgroups (dw, db), numbered
//       flat: grid_1d((N + ceil(C / DG_COLS)) * WG, WG)
// Entry points: layernorm_forward, layernorm_backward

override WG: u32 = 64u;
// dw/db columns per backward workgroup (WG / DG_COLS invocations share a column); a power of two <= WG
override DG_COLS: u32 = 8u;

struct LayernormParams {
  N: u32,
  C: u32,
  eps: f32,
  accumulate: u32,
  dy_parts: u32,  // backward: (N,C) blocks of dy to add (1 = just dy)
};

@group(0) @binding(0) var<storage, read> in0: array<f32>;           // x | dy
@group(0) @binding(1) var<storage, read> in1: array<f32>;           // w | x
@group(0) @binding(2) var<storage, read> in2: array<f32>;           // b | w
@group(0) @binding(3) var<storage, read> mean_in: array<f32>;       // mean (backward)
@group(0) @binding(4) var<storage, read> rstd_in: array<f32>;       // rstd (backward)
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
@group(0) @binding(7) var<storage, read_write> db: array<f32>;
@group(0) @binding(6) var<uniform> p6: LayernormParams;             // forward
@group(0) @binding(8) var<uniform> p8: LayernormParams;             // backward

var<workgroup> red: array<vec2<f32>, WG>;

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

// Sum of `v` over the workgroup (every invocation gets the total). Called in uniform control flow.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();  // red is reused by the next call
  return total;
}

@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let n = row_of(wid, nwg);
  let C = p6.C;
  let valid = n < p6.N;  // no early return: the barriers below need the whole workgroup
  let base = n * C;
  var s = 0.0;
  if (valid) {
    for (var c = lid; c < C; c += WG) { s += in0[base + c]; }
  }
  let mean = workgroup_sum(lid, vec2<f32>(s, 0.0)).x / f32(C);
  var ss = 0.0;
  if (valid) {
    for (var c = lid; c < C; c += WG) { let v = in0[base + c] - mean; ss += v * v; }
  }
  let rstd = 1.0 / sqrt(workgroup_sum(lid, vec2<f32>(ss, 0.0)).x / f32(C) + p6.eps);
  if (!valid) { return; }
  for (var c = lid; c < C; c += WG) { y[base + c] = (in0[base + c] - mean) * rstd * in1[c] + in2[c]; }
  if (lid == 0u) {
    mean_out[n] = mean;
    rstd_out[n] = rstd;
  }
}

// dy[i] of the backward: the sum of its dy_parts blocks, in block order.
fn dy_at(i: u32) -> f32 {
  var v = in0[i];
  for (var s = 1u; s < p8.dy_parts; s++) { v = v + in0[s * p8.N * p8.C + i]; }
  return v;
}

// One dispatch for all three gradients (independent given dy): workgroups [0, N) each do one row of
// dx, workgroups [N, N + ceil(C / DG_COLS)) each do DG_COLS columns of dw and db. The branch is
// uniform per workgroup, so the barriers of the dx rows are in uniform control flow.
@compute @workgroup_size(WG)
fn layernorm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let flat = row_of(wid, nwg);
  let N = p8.N;
  let C = p8.C;
  if (flat < N) {
    let base = flat * C;
    let mu = mean_in[flat];
    let r = rstd_in[flat];
    var sums = vec2<f32>(0.0);  // (sum of dxhat, sum of dxhat * xhat) over the row
    for (var c = lid; c < C; c += WG) {
      let dxhat = dy_at(base + c) * in2[c];
      sums += vec2<f32>(dxhat, dxhat * ((in1[base + c] - mu) * r));
    }
    let means = workgroup_sum(lid, sums) / f32(C);
    for (var c = lid; c < C; c += WG) {
      let xhat = (in1[base + c] - mu) * r;
      let v = (dy_at(base + c) * in2[c] - means.x - xhat * means.y) * r;
      if (p8.accumulate != 0u) { dx[base + c] = dx[base + c] + v; } else { dx[base + c] = v; }
    }
    return;
  }
  // dw, db: this workgroup owns columns c0 .. c0 + DG_COLS - 1. Invocation lid takes column
  // c0 + lid % DG_COLS and every (WG / DG_COLS)-th row from lid / DG_COLS; the row lanes' partial
  // sums are then added in lane order (rmsnorm_backward's dg, with db beside dw in a vec2).
  let lanes = WG / DG_COLS;
  let c = (flat - N) * DG_COLS + lid % DG_COLS;
  var acc = vec2<f32>(0.0);  // (dw, db)
  if (c < C) {
    for (var n = lid / DG_COLS; n < N; n += lanes) {
      let g = dy_at(n * C + c);
      acc += vec2<f32>(g * ((in1[n * C + c] - mean_in[n]) * rstd_in[n]), g);
    }
  }
  // the lanes' sums by a tree (lane l += lane l + s), the same order every time
  red[lid] = acc;
  workgroupBarrier();
  for (var s = lanes / 2u; s > 0u; s = s / 2u) {
    if (lid / DG_COLS < s) { red[lid] = red[lid] + red[lid + s * DG_COLS]; }
    workgroupBarrier();
  }
  if (lid < DG_COLS && c < C) {
    dw[c] = red[lid].x;
    db[c] = red[lid].y;
  }
}
