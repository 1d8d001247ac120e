// matvec_body.wgsl — the products of matvec.wgsl (f32 weights) and matvec_f16.wgsl (f16 weights, f32
// arithmetic), included by both. The including file declares how 4 weights are stored and widened:
//   alias W4 = vec4<f32>;  fn widen4(v: W4) -> vec4<f32> { return v; }                  (matvec.wgsl)
//   alias W4 = vec2<u32>;  fn widen4(v: W4) -> vec4<f32>  (unpack2x16float of each)      (matvec_f16.wgsl)
// and its own entry points, which call the functions below (see matvec.wgsl's header for the math).
//
// Layout: the weights of a product are stored as ROWS, one per output: w (Mp, K) with Mp >= M rows
// (GPT-2's Conv1D weights (K, M) transposed by pack_rows on upload; wte (Vp, C) as it is). Each
// output is then one contiguous row of w against one row of x: LANES invocations share a row, lane j
// taking the vec4s j, j + LANES, ... of it (neighbouring lanes read neighbouring vec4s: coalesced),
// and add their partial dot products by a tree in workgroup memory (a fixed order: deterministic).
// A workgroup owns WG / LANES rows of w. The N rows of x are done four at a time by the same
// invocations (each load of w serves four rows). K % 4 == 0 (x and w are read as vec4 along K).

override WG: u32 = 64u;
override LANES: u32 = 8u;

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<W4>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // matvec_rows
@group(0) @binding(3) var<uniform> p3: MatmulParams;
@group(0) @binding(2) var<storage, read> b: array<f32>;  // the _bias entries
@group(0) @binding(3) var<storage, read_write> y3: array<f32>;  // _bias, _bias_gelu
@group(0) @binding(4) var<uniform> p4: MatmulParams;
@group(0) @binding(3) var<storage, read> res: array<f32>;  // _bias_residual
@group(0) @binding(4) var<storage, read_write> y4: array<f32>;
@group(0) @binding(5) var<uniform> p5: MatmulParams;

var<workgroup> red: array<vec4<f32>, WG>;

const GELU_K: f32 = 0.7978845608028654;  // sqrt(2 / pi)
const GELU_A: f32 = 0.044715;

// x * sigmoid(2u) = 0.5 x (1 + tanh(u)), u = GELU_K (x + GELU_A x^3): elementwise.wgsl's gelu_forward
// (see its header for why no tanh, and why sigmoid(2u) is exactly 0 or 1 from |u| = 40 on).
fn gelu(v: f32) -> f32 {
  let u = GELU_K * (v + GELU_A * v * v * v);
  if (!(abs(u) < 40.0)) { return v * select(0.0, 1.0, u >= 0.0); }
  let e = exp(-2.0 * abs(u));
  let r = 1.0 / (1.0 + e);
  return v * select(e * r, r, u >= 0.0);
}

// (output row o of w, this invocation's lane) from its place in the grid.
fn row_place(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> vec2<u32> {
  return vec2<u32>((wid.y * nwg.x + wid.x) * (WG / LANES) + lid / LANES, lid % LANES);
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// The sum of s over a row's LANES lanes by a tree in workgroup memory (a fixed order: deterministic),
// valid in the row's lane 0. Every invocation of the workgroup must call it (barriers).
fn lanes_sum4(s: vec4<f32>, lane: u32, lid: u32) -> vec4<f32> {
  if (LANES == 1u) { return s; }
  red[lid] = s;
  workgroupBarrier();
  for (var h = LANES / 2u; h > 0u; h = h / 2u) {
    if (lane < h) { red[lid] = red[lid] + red[lid + h]; }
    workgroupBarrier();
  }
  let t = red[lid];
  workgroupBarrier();  // red is rewritten next
  return t;
}

// Where rows n0 .. n0 + 3 of x start (in vec4s of K4 per row); rows past N - 1 repeat row N - 1.
fn row_starts(n0: u32, N: u32, K4: u32) -> vec4<u32> {
  return vec4<u32>(n0, min(n0 + 1u, N - 1u), min(n0 + 2u, N - 1u), min(n0 + 3u, N - 1u)) * K4;
}

// Rows n0 .. n0 + 3 of x against row o of w (K4 = K / 4 vec4s), summed over the row's LANES lanes: the
// 4 sums are valid in the row's lane 0. A prompt's rows share each load of w four ways; rows past N - 1
// repeat row N - 1 (their sums are not stored). N == 1 (decoding) computes the one row only. Row n's
// sum has the same bits whichever of these paths computes it. Every invocation of the workgroup must
// call it (barriers).
fn rows_dot(n0: u32, N: u32, o: u32, K4: u32, lane: u32, lid: u32, valid: bool) -> vec4<f32> {
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  if (valid) {
    if (N == 1u) {
      for (var j = lane; j < K4; j += LANES) { a0 = fma(x[j], widen4(w[o * K4 + j]), a0); }
    } else {
      let r = row_starts(n0, N, K4);
      for (var j = lane; j < K4; j += LANES) {
        let wv = widen4(w[o * K4 + j]);
        a0 = fma(x[r.x + j], wv, a0);
        a1 = fma(x[r.y + j], wv, a1);
        a2 = fma(x[r.z + j], wv, a2);
        a3 = fma(x[r.w + j], wv, a3);
      }
    }
  }
  return lanes_sum4(vec4<f32>(hsum(a0), hsum(a1), hsum(a2), hsum(a3)), lane, lid);
}

// matvec_rows: out (N,M) = x (N,K) @ w[:M].T
fn rows_plain(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
  let q = row_place(wid, nwg, lid);
  let valid = q.x < p3.M;  // no early return: the barriers need the whole workgroup
  for (var n0 = 0u; n0 < p3.N; n0 += 4u) {
    let s = rows_dot(n0, p3.N, q.x, p3.K / 4u, q.y, lid, valid);
    for (var r = 0u; r < min(4u, p3.N - n0); r++) {
      if (valid && q.y == 0u) {
        let i = (n0 + r) * p3.M + q.x;
        if (p3.accumulate != 0u) { out[i] = out[i] + s[r]; } else { out[i] = s[r]; }
      }
    }
  }
}

// matvec_rows_bias, _bias_gelu: y (N,M) = epilogue(x @ w[:M].T + b)
fn rows_bias(gelu_epilogue: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
  let q = row_place(wid, nwg, lid);
  let valid = q.x < p4.M;
  for (var n0 = 0u; n0 < p4.N; n0 += 4u) {
    let s = rows_dot(n0, p4.N, q.x, p4.K / 4u, q.y, lid, valid);
    for (var r = 0u; r < min(4u, p4.N - n0); r++) {
      if (valid && q.y == 0u) {
        let i = (n0 + r) * p4.M + q.x;
        var v = s[r] + b[q.x];
        if (gelu_epilogue) { v = gelu(v); }
        if (p4.accumulate != 0u) { y3[i] = y3[i] + v; } else { y3[i] = v; }
      }
    }
  }
}

// matvec_rows_bias_residual: y (N,M) = res + (x @ w[:M].T + b)
fn rows_bias_residual(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
  let q = row_place(wid, nwg, lid);
  let valid = q.x < p5.M;
  for (var n0 = 0u; n0 < p5.N; n0 += 4u) {
    let s = rows_dot(n0, p5.N, q.x, p5.K / 4u, q.y, lid, valid);
    for (var r = 0u; r < min(4u, p5.N - n0); r++) {
      if (valid && q.y == 0u) {
        let i = (n0 + r) * p5.M + q.x;
        let v = res[i] + (s[r] + b[q.x]);
        if (p5.accumulate != 0u) { y4[i] = y4[i] + v; } else { y4[i] = v; }
      }
    }
  }
}

// --- the _ln entries: the LayerNorm before a product, folded into it --------------------------------------
// out = layernorm(x) @ w[:M].T (+ b, GELU): each workgroup takes the mean and the rstd of its four rows of x
// itself (the whole workgroup's tree sums; the variance from centred values, as layernorm.wgsl does), then
// normalizes x on the fly as it reads it: xn = (x - mean) * rstd * g + beta. A decode step saves the two
// LayerNorm dispatches per layer. WG must be a power of two.
struct LnMatmulParams {
  N: u32,
  K: u32,
  M: u32,
  eps: f32,
};

@group(0) @binding(1) var<storage, read> lg: array<vec4<f32>>;  // the LayerNorm's weight (K,)
@group(0) @binding(2) var<storage, read> lbeta: array<vec4<f32>>;  // and bias (K,)
@group(0) @binding(3) var<storage, read> lw: array<W4>;
@group(0) @binding(4) var<storage, read> lbias: array<f32>;  // the _ln_bias entries
@group(0) @binding(5) var<storage, read_write> ly: array<f32>;
@group(0) @binding(6) var<uniform> lp6: LnMatmulParams;

// The sum over the workgroup of each invocation's v (every invocation gets it).
fn workgroup_sum4(lid: u32, v: vec4<f32>) -> vec4<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid < h) { red[lid] = red[lid] + red[lid + h]; }
    workgroupBarrier();
  }
  let s = red[0];
  workgroupBarrier();  // red is rewritten next
  return s;
}

struct RowStats {
  mean: vec4<f32>,
  rstd: vec4<f32>,
};

// Mean and rstd of rows n0 .. n0 + 3 of x (rows past N - 1 repeat row N - 1). N == 1 (decoding) reads the
// one row once and gives its statistics in all four lanes, with the same bits as lane x of the general path.
fn ln_stats(n0: u32, N: u32, K4: u32, eps: f32, lid: u32) -> RowStats {
  let r = row_starts(n0, N, K4);
  var s = vec4<f32>(0.0);
  if (N == 1u) {
    for (var j = lid; j < K4; j += WG) { s += vec4<f32>(hsum(x[j])); }
  } else {
    for (var j = lid; j < K4; j += WG) {
      s += vec4<f32>(hsum(x[r.x + j]), hsum(x[r.y + j]), hsum(x[r.z + j]), hsum(x[r.w + j]));
    }
  }
  let mean = workgroup_sum4(lid, s) / f32(4u * K4);
  var ss = vec4<f32>(0.0);
  if (N == 1u) {
    for (var j = lid; j < K4; j += WG) {
      let c = x[j] - mean.x;
      ss += vec4<f32>(dot(c, c));
    }
  } else {
    for (var j = lid; j < K4; j += WG) {
      let c0 = x[r.x + j] - mean.x;
      let c1 = x[r.y + j] - mean.y;
      let c2 = x[r.z + j] - mean.z;
      let c3 = x[r.w + j] - mean.w;
      ss += vec4<f32>(dot(c0, c0), dot(c1, c1), dot(c2, c2), dot(c3, c3));
    }
  }
  let rstd = 1.0 / sqrt(workgroup_sum4(lid, ss) / f32(4u * K4) + eps);
  return RowStats(mean, rstd);
}

// rows_dot with x normalized on the fly (st: the four rows' statistics) and w read through lw.
fn ln_rows_dot(n0: u32, N: u32, o: u32, K4: u32, st: RowStats, lane: u32, lid: u32, valid: bool) -> vec4<f32> {
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  if (valid) {
    let r = row_starts(n0, N, K4);
    for (var j = lane; j < K4; j += LANES) {
      let wv = widen4(lw[o * K4 + j]);
      let g = lg[j];
      let bt = lbeta[j];
      a0 = fma((x[r.x + j] - st.mean.x) * st.rstd.x * g + bt, wv, a0);
      if (N > 1u) {
        a1 = fma((x[r.y + j] - st.mean.y) * st.rstd.y * g + bt, wv, a1);
        a2 = fma((x[r.z + j] - st.mean.z) * st.rstd.z * g + bt, wv, a2);
        a3 = fma((x[r.w + j] - st.mean.w) * st.rstd.w * g + bt, wv, a3);
      }
    }
  }
  return lanes_sum4(vec4<f32>(hsum(a0), hsum(a1), hsum(a2), hsum(a3)), lane, lid);
}

// matvec_rows_ln_bias, _ln_bias_gelu: y (N,M) = epilogue(layernorm(x) @ w[:M].T + b)   (ln_1 + qkv, ln_2 + fc)
fn rows_ln_bias(gelu_epilogue: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
  let q = row_place(wid, nwg, lid);
  let valid = q.x < lp6.M;
  let K4 = lp6.K / 4u;
  for (var n0 = 0u; n0 < lp6.N; n0 += 4u) {
    let s = ln_rows_dot(n0, lp6.N, q.x, K4, ln_stats(n0, lp6.N, K4, lp6.eps, lid), q.y, lid, valid);
    for (var r = 0u; r < min(4u, lp6.N - n0); r++) {
      if (valid && q.y == 0u) {
        var v = s[r] + lbias[q.x];
        if (gelu_epilogue) { v = gelu(v); }
        ly[(n0 + r) * lp6.M + q.x] = v;
      }
    }
  }
}
