// rmsnorm.wgsl — RMSNorm forward and backward (reference/ops.py rmsnorm_forward / rmsnorm_backward).
//
// Math (numpy):
//   rmsnorm_forward:  rstd = 1 / sqrt(mean(x**2, axis=1) + eps);  y = x * rstd[:, None] * g
//   rmsnorm_backward: xhat = x * rstd[:, None]; dxhat = dy * g
//                     dx = (dxhat - xhat * mean(dxhat * xhat, axis=1)[:, None]) * rstd[:, None]
//                     dg = sum(dy * xhat, axis=0)
// Shapes: x, y, dy, dx (N,C); g, dg (C,); rstd (N,) kept from the forward for the backward. f32.
// accumulate = 1 makes the backward ADD into dx (dx of a pre-norm block is summed into the residual
// stream's gradient); accumulate = 0 overwrites dx. dg is always overwritten (every gradient tensor
// is written once per step), and so is the forward's output.
// dy_parts (backward; the forward ignores it): dy is the sum of that many (N,C) blocks, one after the
// other in the dy binding, added in block order (matmul_backward_split's dx parts: the matmul before
// the norm cut its sum in parts, and this, its only consumer, finishes the sum). 1: dy itself.
//
// Bindings (group 0, uniform last):
//   rmsnorm_forward:  0 x (read), 1 g (read), 2 y (read_write), 3 rstd (read_write), 4 params
//   rmsnorm_backward: 0 dy (read, dy_parts x (N,C)), 1 x (read), 2 g (read), 3 rstd (read), 4 dx (read_write),
//                     5 dg (read_write), 6 params
// Overrides: WG = 64 (invocations per row; a power of two, at least DG_COLS, for the reductions);
//   DG_COLS = 8 (backward: dg columns per workgroup, a power of two; WG / DG_COLS row lanes each)
// Grid: forward: one workgroup per row, grid_1d(N * WG, WG);
//       backward: N row workgroups (dx) then ceil(C / DG_COLS) column workgroups (dg: DG_COLS columns
//       each, the rows split over WG / DG_COLS invocations per column), numbered flat:
//       grid_1d((N + ceil(C / DG_COLS)) * WG, WG)
// Entry points: rmsnorm_forward, rmsnorm_backward

override WG: u32 = 64u;
// dg columns per backward workgroup (WG / DG_COLS invocations share a column); a power of two <= WG
override DG_COLS: u32 = 8u;

struct RmsnormParams {
  N: u32,
  C: u32,
  eps: f32,
  accumulate: u32,
  dy_parts: u32,  // backward: (N,C) blocks of dy to add (1 = just dy)
};

@group(0) @binding(0) var<storage, read> in0: array<f32>;           // x | dy
@group(0) @binding(1) var<storage, read> in1: array<f32>;           // g | x
@group(0) @binding(2) var<storage, read> in2: array<f32>;           // g (backward)
@group(0) @binding(3) var<storage, read> rstd_in: array<f32>;       // rstd (backward)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dg: array<f32>;
@group(0) @binding(4) var<uniform> p4: RmsnormParams;               // forward
@group(0) @binding(6) var<uniform> p6: RmsnormParams;               // backward

var<workgroup> red: array<f32, WG>;

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

// Sum of `v` over the workgroup (every invocation gets the total). Called in uniform control flow.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
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
fn rmsnorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let n = row_of(wid, nwg);
  let C = p4.C;
  let valid = n < p4.N;  // no early return: the barriers below need the whole workgroup
  let base = n * C;
  var ss = 0.0;
  if (valid) {
    for (var c = lid; c < C; c += WG) { let v = in0[base + c]; ss += v * v; }
  }
  let rstd = 1.0 / sqrt(workgroup_sum(lid, ss) / f32(C) + p4.eps);
  if (!valid) { return; }
  for (var c = lid; c < C; c += WG) { y[base + c] = in0[base + c] * rstd * in1[c]; }
  if (lid == 0u) { rstd_out[n] = rstd; }
}

// dy[i] of the backward: the sum of its dy_parts blocks, in block order.
fn dy_at(i: u32) -> f32 {
  var v = in0[i];
  for (var s = 1u; s < p6.dy_parts; s++) { v = v + in0[s * p6.N * p6.C + i]; }
  return v;
}

// One dispatch for both gradients (independent given dy): workgroups [0, N) each do one row of dx,
// workgroups [N, N + ceil(C / DG_COLS)) each do DG_COLS columns of dg. The branch is uniform per workgroup,
// so the barriers of the dx rows are in uniform control flow.
@compute @workgroup_size(WG)
fn rmsnorm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let flat = row_of(wid, nwg);
  let N = p6.N;
  let C = p6.C;
  if (flat < N) {
    let base = flat * C;
    let r = rstd_in[flat];
    var dot = 0.0;  // sum over c of dxhat * xhat
    for (var c = lid; c < C; c += WG) { dot += dy_at(base + c) * in2[c] * (in1[base + c] * r); }
    let row_dot = workgroup_sum(lid, dot) / f32(C);
    for (var c = lid; c < C; c += WG) {
      let v = (dy_at(base + c) * in2[c] - in1[base + c] * r * row_dot) * r;
      if (p6.accumulate != 0u) { dx[base + c] = dx[base + c] + v; } else { dx[base + c] = v; }
    }
    return;
  }
  // dg: this workgroup owns columns c0 .. c0 + DG_COLS - 1. Invocation lid takes column
  // c0 + lid % DG_COLS and every (WG / DG_COLS)-th row from lid / DG_COLS; the row lanes' partial sums
  // are then added in lane order. (One invocation per column walking all N rows was latency-bound:
  // 0.4 ms for N = 2048, C = 512 on an H200, with only C / WG workgroups in flight.)
  let lanes = WG / DG_COLS;
  let c = (flat - N) * DG_COLS + lid % DG_COLS;
  var acc = 0.0;
  if (c < C) {
    for (var n = lid / DG_COLS; n < N; n += lanes) { acc += dy_at(n * C + c) * (in1[n * C + c] * rstd_in[n]); }
  }
  // the lanes' sums by a tree (lane l += lane l + s), the same order every time
  red[lid] = acc;
  workgroupBarrier();
  for (var s = lanes / 2u; s > 0u; s = s / 2u) {
    if (lid / DG_COLS < s) { red[lid] = red[lid] + red[lid + s * DG_COLS]; }
    workgroupBarrier();
  }
  if (lid < DG_COLS && c < C) { dg[c] = red[lid]; }
}
