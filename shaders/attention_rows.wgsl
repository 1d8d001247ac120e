// attention_rows.wgsl — causal multi-head self-attention forward for wide heads, one query row per
// invocation (reference/ops_attention.py attention_forward; the same math as attention.wgsl's
// attention_forward, which gpu/attention_ops.py keeps for narrow heads).
//
// Math (numpy, per batch b and head h; q, k, v (T,D) are head h's columns of qkv; scale = 1/sqrt(D)):
//   S = q @ k.T * scale, S[t, s > t] = -inf;  lse = logsumexp(S, axis=1);  y = exp(S - lse[:, None]) @ v
// Shapes (f32, row-major): qkv (B,T,3C) with columns [q | k | v] and head h at h*D:(h+1)*D inside
//   each; y (B,T,C); lse (B,H,T). D = C / H, a multiple of 4, at most 64.
//
// Why rows: attention.wgsl gives each invocation one vec4 column of a row, so a score is a dot
// product read from workgroup memory on both sides (2 loads per vec4 FMA, bank conflicts), and
// every 8-key tile costs several barriers: on an H200 the large model's attention ran at a few
// TFLOP/s. Here invocation r owns query row t0 + r: q (times scale) and the output accumulator
// live in registers (function-scope arrays indexed only by constant-bound loops, so drivers
// unroll them), the workgroup loads KT keys and values at a time into workgroup memory, and every
// invocation reads the same key (a broadcast, no conflicts): one shared load per vec4 FMA and two
// barriers per KT keys. Online softmax four keys at a time: running max m and sum l, the
// accumulator rescaled by exp(m_old - m_new) once per four keys (four independent dot products in
// flight). Loops over a row's vec4s run to the constant MAX_D4 and break at D4 (an override), so
// the compiler can unroll them and keep the arrays in registers.
//
// Bindings (group 0, uniform last): 0 qkv (read), 1 y (read_write), 2 lse (read_write), 3 params
// Overrides: D = 64 head width; ROWS = 64 query rows (= invocations) per workgroup; KT = 16 keys per
//   workgroup-memory tile (2 * KT * D/4 vec4 of workgroup memory: 8 KiB at D = 64, KT = 16).
// Grid: (ceil(T / ROWS), H, B).
// Entry points: attention_rows_forward

override D: u32 = 64u;
override ROWS: u32 = 64u;
override KT: u32 = 16u;
override KT_VEC4: u32 = KT * (D / 4u);  // derived: vec4 slots of one key tile (callers never set it)
const MAX_D4: u32 = 16u;                // D <= 64
const NEG_BIG: f32 = -3.0e38;           // "minus infinity" (exp underflows to exactly 0)

struct AttentionParams {
  B: u32,
  T: u32,
  C: u32,
  H: u32,
};

@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(3) var<uniform> p: AttentionParams;

var<workgroup> k_sh: array<vec4<f32>, KT_VEC4>;  // [key * D4 + c]
var<workgroup> v_sh: array<vec4<f32>, KT_VEC4>;

// Index of vec4 column `col4` of row (b, t) in a (B,T,width4*4) tensor.
fn row_vec4(b: u32, t: u32, T: u32, width4: u32, col4: u32) -> u32 {
  return (b * T + t) * width4 + col4;
}

@compute @workgroup_size(ROWS)
fn attention_rows_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) r: u32) {
  let D4 = D / 4u;
  let T = p.T;
  let C4 = p.C / 4u;
  let h = wid.y;
  let b = wid.z;
  let t0 = wid.x * ROWS;
  let t = t0 + r;
  let row_ok = t < T;
  let scale = inverseSqrt(f32(D));
  var q: array<vec4<f32>, MAX_D4>;
  var acc: array<vec4<f32>, MAX_D4>;  // sum over keys of p * v, in units of exp(-m)
  for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
    q[i] = vec4<f32>(0.0);
    if (row_ok) { q[i] = qkv[row_vec4(b, t, T, 3u * C4, h * D4 + i)] * scale; }
    acc[i] = vec4<f32>(0.0);
  }
  var m = NEG_BIG;  // running max of the row's scores
  var l = 0.0;      // running sum of exp(score - m)
  let n_keys = min(T, t0 + ROWS);  // causal: the workgroup needs keys 0 .. n_keys-1 (uniform)
  for (var s0 = 0u; s0 < n_keys; s0 += KT) {
    workgroupBarrier();  // the previous tile's reads are done
    for (var e = r; e < KT * D4; e += ROWS) {
      let key = s0 + e / D4;
      let c = e % D4;
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (key < T) {
        kv = qkv[row_vec4(b, key, T, 3u * C4, C4 + h * D4 + c)];
        vv = qkv[row_vec4(b, key, T, 3u * C4, 2u * C4 + h * D4 + c)];
      }
      k_sh[e] = kv;
      v_sh[e] = vv;
    }
    workgroupBarrier();
    // keys s0 .. min(s0 + KT, t + 1) - 1 are visible to row t (none when t < s0)
    let visible = min(KT, select(0u, t + 1u - s0, t >= s0));
    // four keys at a time: four independent dot products, one rescale of the accumulator
    for (var j0 = 0u; j0 < visible; j0 += 4u) {
      let k0 = j0 * D4;
      let k1 = min(j0 + 1u, KT - 1u) * D4;  // past the tile: a valid slot, masked below
      let k2 = min(j0 + 2u, KT - 1u) * D4;
      let k3 = min(j0 + 3u, KT - 1u) * D4;
      var d0 = vec4<f32>(0.0);
      var d1 = vec4<f32>(0.0);
      var d2 = vec4<f32>(0.0);
      var d3 = vec4<f32>(0.0);
      for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
        d0 = fma(q[i], k_sh[k0 + i], d0);
        d1 = fma(q[i], k_sh[k1 + i], d1);
        d2 = fma(q[i], k_sh[k2 + i], d2);
        d3 = fma(q[i], k_sh[k3 + i], d3);
      }
      let one = vec4<f32>(1.0);
      let seen = vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u) < vec4<u32>(visible);
      let s4 = select(vec4<f32>(NEG_BIG), vec4<f32>(dot(d0, one), dot(d1, one), dot(d2, one), dot(d3, one)), seen);
      let m_new = max(m, max(max(s4.x, s4.y), max(s4.z, s4.w)));  // finite: key j0 is visible
      let alpha = exp(m - m_new);
      let p4 = exp(s4 - m_new);  // masked keys: exp(-3e38) == 0
      l = l * alpha + p4.x + p4.y + p4.z + p4.w;
      for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
        var a = acc[i] * alpha;
        a = fma(vec4<f32>(p4.x), v_sh[k0 + i], a);
        a = fma(vec4<f32>(p4.y), v_sh[k1 + i], a);
        a = fma(vec4<f32>(p4.z), v_sh[k2 + i], a);
        acc[i] = fma(vec4<f32>(p4.w), v_sh[k3 + i], a);
      }
      m = m_new;
    }
  }
  if (!row_ok) { return; }
  let inv_l = 1.0 / l;
  for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; } y_out[row_vec4(b, t, T, C4, h * D4 + i)] = acc[i] * inv_l; }
  lse_out[(b * p.H + h) * T + t] = m + log(l);
}
