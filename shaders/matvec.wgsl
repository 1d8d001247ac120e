// matvec.wgsl — products with few rows as dot products: decoding one token (N = 1), where a tile of
// matmul.wgsl would compute TM rows for one (TM - 1 of TM rows of its work wasted) and give only
// ceil(M / TN) workgroups, each walking all of K serially (latency-bound).
//
// Math (numpy):
//   matvec_transposed: out = a @ w[:K].T          a (N,M), w (Kp,M) with Kp >= K rows -> out (N,K)
//       (matmul.wgsl's matmul_backward_dx with dy = a: the same bindings and uniform.) GPT-2's tied head
//       at decode: logits (1,V) = x (1,C) @ wte[:V].T, wte stored (Vp,C); rows K.. of w are never read.
//   matvec_forward_bias:          y = x @ w + b             x (N,K), w (K,M), b (M,) -> y (N,M)
//   matvec_forward_bias_gelu:     y = gelu(x @ w + b)       GPT-2's tanh GELU (elementwise.wgsl's gelu_forward)
//   matvec_forward_bias_residual: y = res + (x @ w + b)     res (N,M)
//       (matmul.wgsl's matmul_forward_bias, _bias_gelu, _bias_residual: the same bindings and uniform.)
//       GPT-2's linear layers at decode: qkv, attn.c_proj, mlp.c_fc, mlp.c_proj with N = 1.
// All f32, row-major. accumulate = 0 overwrites out / y, 1 adds into it.
//
// matvec_transposed: M % 4 == 0 (a and w are read as vec4 along M). Each output is one row of w against
// one row of a: LANES invocations share a row of w, lane j taking the vec4s j, j + LANES, ... of it
// (neighbouring lanes read neighbouring 16 bytes: coalesced), and add their partial dot products by a
// tree in workgroup memory (a fixed order: deterministic). The N rows of a are done one after the other
// by the same invocations (w's row stays in cache).
// matvec_forward_bias*: any K, M. Each output is a column of w against the row of x. A workgroup is
// TC = WG / KSPLIT column lanes by KSPLIT k-groups and owns TC * COLS columns: lane t the columns
// c0 + t + j * TC (j < COLS), k-group g the rows k = g, g + KSPLIT, ... of w. Neighbouring lanes read
// neighbouring floats of one row of w (coalesced); x[k] is one address for all lanes (a broadcast).
// The KSPLIT partial sums of a column are added by a tree in workgroup memory (a fixed order:
// deterministic), then k-group 0 adds the bias and applies the epilogue. Columns past M read column
// M - 1 (clamped, no branch in the k loop) and store nothing. Rows of x: one after the other.
//
// Bindings (group 0, uniform last):
//   matvec_transposed: 0 a (read), 1 w (read), 2 out (read_write), 3 params
//   matvec_forward_bias, _bias_gelu: 0 x, 1 w, 2 b (read), 3 y (read_write), 4 params
//   matvec_forward_bias_residual:    0 x, 1 w, 2 b, 3 res (read), 4 y (read_write), 5 params
//   params: MatmulParams {N rows, K, M, accumulate} (matvec_transposed: K outputs per row = rows of w
//   used, M the dot products' length)
// Overrides: WG = 64 invocations; LANES = 8 per row of w (matvec_transposed; a power of two dividing WG);
//   KSPLIT = 8 k-groups (matvec_forward_*; a power of two dividing WG; 1: no tree); COLS = 1 columns per
//   lane (1..4). gpu/matmul_rules.py's matvec_overrides / matvec_forward_overrides pick them per adapter.
// Grid: matvec_transposed: grid_1d(ceil(K / (WG / LANES)) * WG, WG)
//       matvec_forward_*:  grid_1d(ceil(M / (WG / KSPLIT * COLS)) * WG, WG)
// Entry points: matvec_transposed, matvec_forward_bias, matvec_forward_bias_gelu,
//   matvec_forward_bias_residual

override WG: u32 = 64u;
override LANES: u32 = 8u;
override KSPLIT: u32 = 8u;
override COLS: u32 = 1u;

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: MatmulParams;

var<workgroup> red: array<f32, WG>;
var<workgroup> red4: array<vec4<f32>, WG>;

@compute @workgroup_size(WG)
fn matvec_transposed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let k = (wid.y * nwg.x + wid.x) * (WG / LANES) + lid / LANES;  // the row of w (= output column)
  let lane = lid % LANES;
  let M4 = p.M / 4u;
  let valid = k < p.K;  // no early return: the barriers below need the whole workgroup
  for (var n = 0u; n < p.N; n++) {
    var acc = vec4<f32>(0.0);
    if (valid) {
      for (var j = lane; j < M4; j += LANES) { acc = fma(a[n * M4 + j], w[k * M4 + j], acc); }
    }
    var s = (acc.x + acc.y) + (acc.z + acc.w);
    if (LANES > 1u) {
      red[lid] = s;
      workgroupBarrier();
      for (var h = LANES / 2u; h > 0u; h = h / 2u) {
        if (lane < h) { red[lid] = red[lid] + red[lid + h]; }
        workgroupBarrier();
      }
      s = red[lid];
      workgroupBarrier();  // red is rewritten for the next row of a
    }
    if (valid && lane == 0u) {
      let o = n * p.K + k;
      if (p.accumulate != 0u) { out[o] = out[o] + s; } else { out[o] = s; }
    }
  }
}

// --- y = epilogue(x @ w + b): GPT-2's linear layers for one row ----------------------------------------
@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read> fres: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy3: array<f32>;  // y of _bias, _bias_gelu
@group(0) @binding(4) var<storage, read_write> fy4: array<f32>;  // y of _bias_residual
@group(0) @binding(4) var<uniform> p4: MatmulParams;
@group(0) @binding(5) var<uniform> p5: MatmulParams;

const GELU_K: f32 = 0.7978845608028654;  // sqrt(2 / pi)
const GELU_A: f32 = 0.044715;

// x * sigmoid(2u) = 0.5 x (1 + tanh(u)), u = GELU_K (x + GELU_A x^3): elementwise.wgsl's gelu_forward
// (see its header for why no tanh, and why sigmoid(2u) is exactly 0 or 1 from |u| = 40 on).
fn gelu(x: f32) -> f32 {
  let u = GELU_K * (x + GELU_A * x * x * x);
  if (!(abs(u) < 40.0)) { return x * select(0.0, 1.0, u >= 0.0); }
  let e = exp(-2.0 * abs(u));  // elementwise.wgsl's `a` (here a name of matvec_transposed's binding)
  let r = 1.0 / (1.0 + e);
  return x * select(e * r, r, u >= 0.0);
}

// The (up to 4) column sums of this lane for row n of x, added over the k-groups: valid in k-group 0.
fn column_sums(n: u32, K: u32, M: u32, c0: u32, TC: u32, g: u32, lid: u32) -> vec4<f32> {
  let last = M - 1u;
  let c = vec4<u32>(min(c0, last), min(c0 + TC, last), min(c0 + 2u * TC, last), min(c0 + 3u * TC, last));
  var acc = vec4<f32>(0.0);
  for (var k = g; k < K; k += KSPLIT) {
    let xk = fx[n * K + k];
    let row = k * M;
    acc.x = fma(xk, fw[row + c.x], acc.x);
    if (COLS > 1u) { acc.y = fma(xk, fw[row + c.y], acc.y); }
    if (COLS > 2u) { acc.z = fma(xk, fw[row + c.z], acc.z); }
    if (COLS > 3u) { acc.w = fma(xk, fw[row + c.w], acc.w); }
  }
  if (KSPLIT > 1u) {
    red4[lid] = acc;
    workgroupBarrier();
    for (var h = KSPLIT / 2u; h > 0u; h = h / 2u) {
      if (g < h) { red4[lid] = red4[lid] + red4[lid + h * TC]; }
      workgroupBarrier();
    }
    acc = red4[lid];
    workgroupBarrier();  // red4 is rewritten for the next row of x
  }
  return acc;
}

// This invocation's place: (column lane t, k-group g, first column c0).
fn forward_place(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> vec3<u32> {
  let TC = WG / KSPLIT;
  return vec3<u32>(lid % TC, lid / TC, (wid.y * nwg.x + wid.x) * (TC * COLS) + lid % TC);
}

// The stores of matvec_forward_bias and _bias_gelu (the residual entry has its own: y and res share a binding).
fn forward_rows3(gelu_epilogue: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
  let q = forward_place(wid, nwg, lid);
  let N = p4.N;
  let K = p4.K;
  let M = p4.M;
  if (M == 0u) { return; }  // uniform across the workgroup: no barrier is skipped by part of it
  for (var n = 0u; n < N; n++) {
    let s = column_sums(n, K, M, q.z, WG / KSPLIT, q.y, lid);
    for (var j = 0u; j < select(0u, COLS, q.y == 0u); j++) {  // k-group 0 holds the sums (no continue:
                                                               // the next row's barriers stay uniform)
      let c = q.z + j * (WG / KSPLIT);
      if (c < M) {
        let i = n * M + c;
        var y = s[j] + fb[c];
        if (gelu_epilogue) { y = gelu(y); }
        if (p4.accumulate != 0u) { fy3[i] = fy3[i] + y; } else { fy3[i] = y; }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn matvec_forward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  forward_rows3(false, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_forward_bias_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  forward_rows3(true, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_forward_bias_residual(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
  let q = forward_place(wid, nwg, lid);
  let N = p5.N;
  let K = p5.K;
  let M = p5.M;
  if (M == 0u) { return; }
  for (var n = 0u; n < N; n++) {
    let s = column_sums(n, K, M, q.z, WG / KSPLIT, q.y, lid);
    for (var j = 0u; j < select(0u, COLS, q.y == 0u); j++) {  // k-group 0 holds the sums
      let c = q.z + j * (WG / KSPLIT);
      if (c < M) {
        let i = n * M + c;
        let y = fres[i] + (s[j] + fb[c]);
        if (p5.accumulate != 0u) { fy4[i] = fy4[i] + y; } else { fy4[i] = y; }
      }
    }
  }
}
