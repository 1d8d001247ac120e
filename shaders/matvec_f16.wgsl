// matvec_f16.wgsl — matvec.wgsl's products with the weights stored in f16 and the arithmetic in f32,
// plus the f16 weights' embedding and packing. Core WGSL: two f16 per u32, widened by unpack2x16float
// as they are read (no `shader-f16` feature needed, so every WebGPU device runs it).
//
// Math (numpy; w16 = w.astype(np.float16), every product and sum in f32):
//   matvec_rows_f16, matvec_rows_bias_f16, matvec_rows_bias_gelu_f16, matvec_rows_bias_residual_f16,
//   matvec_rows_ln_bias_f16, matvec_rows_ln_bias_gelu_f16:
//       matvec.wgsl's entries of the same name without _f16, with w16 in place of w.
//   embedding_forward_f16:  x[n,:] = f32(wte16[min(idx[n], V-1)]) + wpe[n % T]   embedding.wgsl's
//       embedding_forward with wte in f16: idx (B,T) u32, wte16 (Vp,C), wpe (Tmax,C) f32 -> x (B,T,C)
//   pack_rows_transposed_f16: dst16 (M,K) = f16(src (K,M).T), a chunk of src's rows at a time
//   pack_rows_f16:            dst16 (K,M) = f16(src (K,M)), a chunk of src's rows at a time
//   Storage: value e of a (R, C) f16 matrix is half e % 2 (0: the low 16 bits) of u32 word e / 2, as
//   little-endian f16 bytes would lie; C % 2 == 0 (K % 4 == 0 for the products). f32 -> f16 by
//   pack2x16float, which WGSL lets round to either neighbour; a value past f16's range (65504) is
//   undefined: `tabgpt sample` keeps such weights in f32 (cli/sample_gpt2.py), GPT-2's are far inside.
//   A transposed chunk must hold whole row pairs (row0 and rows even), as gpu/gpt2_weights.py makes them.
//
// Bindings (group 0, uniform last): the matvec entries as matvec.wgsl's, w as array<vec2<u32>>;
//   embedding_forward_f16: 0 idx (read u32), 1 wte (read u32 pairs), 2 wpe (read), 3 x (read_write),
//                          4 EmbeddingParams {B, T, C, V, Tmax}
//   pack_rows*_f16:        0 src (read), 1 dst (read_write u32), 2 PackParams {n, M, K, row0}: n = the
//                          chunk's values (rows * M); one invocation per u32 written (n / 2)
// Overrides: WG = 64, LANES = 8 (matvec_body.wgsl's; embedding and packing use WG only).
// Grid: matvec_rows*_f16: grid_1d(ceil(M / (WG / LANES)) * WG, WG); embedding_forward_f16:
//   grid_1d(B*T*C, WG); pack_rows*_f16: grid_1d(n / 2, WG)
// Entry points: matvec_rows_f16, matvec_rows_bias_f16, matvec_rows_bias_gelu_f16,
//   matvec_rows_bias_residual_f16, matvec_rows_ln_bias_f16, matvec_rows_ln_bias_gelu_f16,
//   embedding_forward_f16, pack_rows_transposed_f16, pack_rows_f16

alias W4 = vec2<u32>;

fn widen4(v: W4) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
}

// #include "matvec_body.wgsl"

@compute @workgroup_size(WG)
fn matvec_rows_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  rows_plain(wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_bias_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  rows_bias(false, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_bias_gelu_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
  rows_bias(true, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_bias_residual_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
  rows_bias_residual(wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_ln_bias_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  rows_ln_bias(false, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_ln_bias_gelu_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
  rows_ln_bias(true, wid, nwg, lid);
}

// --- packing on upload ---------------------------------------------------------------------------------
struct PackParams {
  n: u32,
  M: u32,
  K: u32,
  row0: u32,
};

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> pp: PackParams;

fn pair_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Word q of the chunk's destination: rows k, k + 1 (k = row0 + 2 (q % (rows / 2))) of column m = q / (rows / 2).
@compute @workgroup_size(WG)
fn pack_rows_transposed_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let q = pair_index(wid, nwg, lid);
  if (2u * q >= pp.n) { return; }
  let half_rows = pp.n / pp.M / 2u;
  let m = q / half_rows;
  let r = 2u * (q % half_rows);  // row within the chunk
  dst[(m * pp.K + pp.row0 + r) / 2u] = pack2x16float(vec2<f32>(src[r * pp.M + m], src[(r + 1u) * pp.M + m]));
}

// Word q of the chunk's destination: values 2q, 2q + 1 of the chunk, in place from row row0 on.
@compute @workgroup_size(WG)
fn pack_rows_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let q = pair_index(wid, nwg, lid);
  if (2u * q >= pp.n) { return; }
  dst[pp.row0 * pp.M / 2u + q] = pack2x16float(vec2<f32>(src[2u * q], src[2u * q + 1u]));
}

// --- the token + position embedding with wte in f16 ---------------------------------------------------
struct EmbeddingParams {
  B: u32,
  T: u32,
  C: u32,
  V: u32,
  Tmax: u32,
};

@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read> wte: array<u32>;
@group(0) @binding(2) var<storage, read> wpe: array<f32>;
@group(0) @binding(3) var<storage, read_write> emb: array<f32>;
@group(0) @binding(4) var<uniform> pe: EmbeddingParams;

@compute @workgroup_size(WG)
fn embedding_forward_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;  // element of x (B,T,C)
  if (i >= pe.B * pe.T * pe.C) { return; }
  let n = i / pe.C;  // row b*T + t
  let c = i % pe.C;
  let t = n % pe.T;
  let e = min(idx[n], pe.V - 1u) * pe.C + c;  // value of wte16
  emb[i] = unpack2x16float(wte[e / 2u])[e % 2u] + wpe[t * pe.C + c];
}
