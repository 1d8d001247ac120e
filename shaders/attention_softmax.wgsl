// attention_softmax.wgsl — the causal softmax between the attention's per-head products where the
// scores are materialised (gpu/materialized_attention.py: on the matrix units in the mixed step,
// matmul_heads.wgsl in the fp32 one): forward and backward over score rows, f32 throughout.
//
// Math (numpy, per batch b, head h and query row t; S (T,T) = q * scale @ k.T (f16 operands in the mixed
// step), written by the scores product for keys s <= t at least: entries above the diagonal may hold
// anything and are never read into a result):
//   forward:  m = max(S[t, :t+1]);  l = sum(exp(S[t, :t+1] - m));  lse[t] = m + log(l)
//             P[t, s] = exp(S[t, s] - m) / l for s <= t, 0 for s > t
//   backward: P[t, s] = exp(S[t, s] - lse[t]) for s <= t, 0 for s > t (S recomputed as in the forward)
//             delta = sum(P[t] * dP[t]);  dS[t, s] = P[t, s] * (dP[t, s] - delta), 0 for s > t
//   (delta = rowsum(P * dP) = rowsum(dy * y) of reference/ops_attention.py, taken from the products'
//   own dP.)
// Shapes: s, dp (B*H, T, T) row-major, row r = (b * H + h) * T + t; lse (B, H, T), entry r. T a
//   multiple of 4 (vec4 rows).
// Bindings (group 0, uniform last):
//   attention_softmax_forward:  0 s (read_write: S in, P out), 1 lse (read_write), 2 params
//   attention_softmax_backward: 0 s (read_write: S in, P out), 1 dp (read_write: dP in, dS out),
//                               2 lse (read), 3 params
// Uniform: rows = B * H * T, T.
// Grid: one workgroup of 64 invocations per row, folded into (x, y) past 65535 rows
//   (registry.grid_1d(rows * 64, 64)); invocation i takes the row's vec4 i, i + 64, ...; the row's max
//   and sums are tree reductions in workgroup memory (fixed order).

const WG: u32 = 64u;
const NEG_BIG: f32 = -3.0e38;  // "minus infinity" (exp of it minus a finite max is exactly 0)

struct SoftmaxParams {
  rows: u32,
  T: u32,
};

@group(0) @binding(0) var<storage, read_write> s: array<vec4<f32>>;

var<workgroup> red: array<f32, WG>;

// The four entries of vec4 j of row t that lie on or below the diagonal (key <= query).
fn kept(j: u32, t: u32) -> vec4<bool> {
  return vec4<u32>(4u * j, 4u * j + 1u, 4u * j + 2u, 4u * j + 3u) <= vec4<u32>(t);
}

fn row_index(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return wid.y * groups.x + wid.x;
}

// The workgroup's max (op 0) or sum (op 1) of one value per invocation; every invocation gets it.
fn reduce(v: f32, lid: u32, op: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w / 2u) {
    if (lid < w) {
      if (op == 0u) { red[lid] = max(red[lid], red[lid + w]); } else { red[lid] = red[lid] + red[lid + w]; }
    }
    workgroupBarrier();
  }
  let out = red[0];
  workgroupBarrier();
  return out;
}

fn hmax(v: vec4<f32>) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

@group(0) @binding(1) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(2) var<uniform> pf: SoftmaxParams;

@compute @workgroup_size(WG)
fn attention_softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
  let r = row_index(wid, groups);
  if (r >= pf.rows) { return; }  // uniform: the whole workgroup
  let t = r % pf.T;
  let n4 = pf.T / 4u;
  let base = r * n4;
  var m = NEG_BIG;
  for (var j = lid; j < n4; j += WG) {
    m = max(m, hmax(select(vec4<f32>(NEG_BIG), s[base + j], kept(j, t))));
  }
  m = reduce(m, lid, 0u);
  var l = 0.0;
  for (var j = lid; j < n4; j += WG) {
    l += hsum(select(vec4<f32>(0.0), exp(s[base + j] - m), kept(j, t)));
  }
  l = reduce(l, lid, 1u);
  for (var j = lid; j < n4; j += WG) {
    s[base + j] = select(vec4<f32>(0.0), exp(s[base + j] - m) / l, kept(j, t));
  }
  if (lid == 0u) { lse_out[r] = m + log(l); }
}

@group(0) @binding(1) var<storage, read_write> dp: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> lse_in: array<f32>;
@group(0) @binding(3) var<uniform> pb: SoftmaxParams;

@compute @workgroup_size(WG)
fn attention_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
  let r = row_index(wid, groups);
  if (r >= pb.rows) { return; }  // uniform: the whole workgroup
  let t = r % pb.T;
  let n4 = pb.T / 4u;
  let base = r * n4;
  let lse = lse_in[r];
  var delta = 0.0;
  for (var j = lid; j < n4; j += WG) {
    let keep = kept(j, t);
    let pj = select(vec4<f32>(0.0), exp(s[base + j] - lse), keep);
    delta += hsum(select(vec4<f32>(0.0), pj * dp[base + j], keep));
  }
  delta = reduce(delta, lid, 1u);
  for (var j = lid; j < n4; j += WG) {
    let keep = kept(j, t);
    let pj = select(vec4<f32>(0.0), exp(s[base + j] - lse), keep);
    dp[base + j] = select(vec4<f32>(0.0), pj * (dp[base + j] - delta), keep);
    s[base + j] = pj;
  }
}
