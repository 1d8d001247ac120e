// federated.wgsl — a federated client's two tensor steps per round, on the GPU (pyscript_app/federated/).
//
// Math (numpy; P = param_count, on the padded layout of gpu/layout.py, whose gaps are 0):
//   delta_f16:         delta = np.clip(weights - start, -65504, 65504).astype("<f2")
//                      (weights: params after the local steps; start: the round's global weights W_r)
//   apply_update_f16:  start = start + update.astype(np.float32); weights = start
//                      (update: the relay's f16 UPDATE u; W_{r+1} = W_r + decode(u) in f32, exactly as
//                      the relay computes it; the local params restart from W_{r+1}, AdamW state kept)
// The f16 conversions are done on the bits, not with pack2x16float / unpack2x16float: WGSL lets an
// implementation round an f32 -> f16 conversion either way and flush subnormals, while the relay's
// numpy rounds to nearest even and keeps subnormals (|u| < 6.1e-5 is common in an update). Bit-exact
// here is what makes every client's weights hash to the relay's weights_sha256.
// Layout: f16 values packed two per u32, element 2i in the low half (little-endian, as in the frame).
// Bindings (group 0, uniform last; entries share binding numbers with different roles):
//   delta_f16:         0 weights (read), 1 start (read), 2 delta (read_write, u32 pairs), 3 params
//   apply_update_f16:  0 update (read, u32 pairs), 1 start (read_write), 2 weights (read_write), 3 params
// Overrides: WG = 256
// Grid: grid_1d(ceil(n / 2), WG): one invocation per pair of elements
// Entry points: delta_f16, apply_update_f16

override WG: u32 = 256u;

struct FederatedParams {
  n: u32,  // f32 elements (an odd n leaves the last pair's high half 0)
};

@group(0) @binding(0) var<storage, read> weights_in: array<f32>;
@group(0) @binding(1) var<storage, read> start_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> delta_out: array<u32>;
@group(0) @binding(0) var<storage, read> update_in: array<u32>;
@group(0) @binding(1) var<storage, read_write> start_io: array<f32>;
@group(0) @binding(2) var<storage, read_write> weights_out: array<f32>;
@group(0) @binding(3) var<uniform> p: FederatedParams;

fn pair_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// f32 -> f16 bits: round to nearest, ties to even (numpy's astype); beyond +-65504 (Inf too)
// saturates to +-65504 (the client clips first so a finite delta stays finite); NaN stays NaN with
// numpy's payload rule (the top 10 mantissa bits, never all zero).
fn f16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) {
    let nan = 0x7c00u + ((a & 0x7fffffu) >> 13u);
    return sign | select(nan, 0x7c01u, nan == 0x7c00u);
  }
  if (a > 0x477fe000u) { return sign | 0x7bffu; }  // |x| > 65504
  if (a >= 0x38800000u) {  // a normal f16: rebias the exponent (127 -> 15), round 13 bits away
    let m = a - 0x38000000u;
    let h = m >> 13u;
    let rest = m & 0x1fffu;
    let up = rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u);
    return sign | (h + select(0u, 1u, up));  // a carry rounds into the exponent, as it should
  }
  let e = a >> 23u;
  if (e < 102u) { return sign; }  // below half the smallest subnormal 2^-24: +-0
  // a subnormal f16: |x| / 2^-24 rounded, with mant = the 24-bit significand of x
  let mant = (a & 0x7fffffu) | 0x800000u;
  let shift = 126u - e;  // 14 ..= 24
  let h = mant >> shift;
  let rest = mant & ((1u << shift) - 1u);
  let halfway = 1u << (shift - 1u);
  let up = rest > halfway || (rest == halfway && (h & 1u) == 1u);
  return sign | (h + select(0u, 1u, up));
}

// f16 bits -> the f32 of the same value (exact: every f16 is an f32), built from bits only.
fn f16_value(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0x1fu) { return bitcast<f32>(sign | 0x7f800000u | (m << 13u)); }  // Inf, NaN
  if (e != 0u) { return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u)); }
  if (m == 0u) { return bitcast<f32>(sign); }  // +-0
  // subnormal m * 2^-24: the leading 1 at bit k becomes the implicit bit of 2^(k-24)
  let k = 31u - countLeadingZeros(m);
  return bitcast<f32>(sign | ((k + 103u) << 23u) | ((m << (23u - k)) & 0x7fffffu));
}

@compute @workgroup_size(WG)
fn delta_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = pair_index(wid, nwg, lid);
  let j = 2u * i;
  if (j >= p.n) { return; }
  let lo = f16_bits(weights_in[j] - start_in[j]);
  var hi = 0u;
  if (j + 1u < p.n) { hi = f16_bits(weights_in[j + 1u] - start_in[j + 1u]); }
  delta_out[i] = lo | (hi << 16u);
}

@compute @workgroup_size(WG)
fn apply_update_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = pair_index(wid, nwg, lid);
  let j = 2u * i;
  if (j >= p.n) { return; }
  let u = update_in[i];
  let w0 = start_io[j] + f16_value(u & 0xffffu);
  start_io[j] = w0;
  weights_out[j] = w0;
  if (j + 1u < p.n) {
    let w1 = start_io[j + 1u] + f16_value(u >> 16u);
    start_io[j + 1u] = w1;
    weights_out[j + 1u] = w1;
  }
}
