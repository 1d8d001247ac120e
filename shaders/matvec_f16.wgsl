// matvec_f16.wgsl — matvec.wgsl's products with the weights stored in f16 and the arithmetic in f32
// (each weight is widened as it is read), plus the f16 weights' embedding and packing. Compiled only
// on devices with the `shader-f16` feature (gpu/gpt2_weights.py chooses the weights' type).
//
// Math (numpy; w16 = w.astype(np.float16), every product and sum in f32):
//   matvec_rows_f16, matvec_rows_bias_f16, matvec_rows_bias_gelu_f16, matvec_rows_bias_residual_f16:
//       matvec.wgsl's entries of the same name without _f16, with w16 in place of w.
//   embedding_forward_f16:  x[n,:] = f32(wte16[min(idx[n], V-1)]) + wpe[n % T]   embedding.wgsl's
//       embedding_forward with wte in f16: idx (B,T) u32, wte16 (Vp,C), wpe (Tmax,C) f32 -> x (B,T,C)
//   pack_rows_transposed_f16: dst16 (M,K) = f16(src (K,M).T), a chunk of src's rows at a time
//   pack_rows_f16:            dst16 (K,M) = f16(src (K,M)), a chunk of src's rows at a time
//   (f32 -> f16 rounds to nearest even. WGSL leaves a value past f16's range (65504) undefined:
//   gpu/gpt2_weights.py's callers check the weights first; GPT-2's are far inside it.)
//
// Bindings (group 0, uniform last): the matvec entries as matvec.wgsl's;
//   embedding_forward_f16: 0 idx (read u32), 1 wte (read), 2 wpe (read), 3 x (read_write),
//                          4 EmbeddingParams {B, T, C, V, Tmax}
//   pack_rows*_f16:        0 src (read), 1 dst (read_write), 2 PackParams {n, M, K, row0}
// Overrides: WG = 64, LANES = 8 (matvec_body.wgsl's; embedding and packing use WG only).
// Grid: matvec_rows*_f16: grid_1d(ceil(M / (WG / LANES)) * WG, WG); embedding_forward_f16:
//   grid_1d(B*T*C, WG); pack_rows*_f16: grid_1d(n, WG)
// Entry points: matvec_rows_f16, matvec_rows_bias_f16, matvec_rows_bias_gelu_f16,
//   matvec_rows_bias_residual_f16, embedding_forward_f16, pack_rows_transposed_f16, pack_rows_f16

enable f16;

alias W4 = vec4<f16>;
alias WS = f16;

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
fn pack_rows_transposed_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  pack_one(true, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn pack_rows_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  pack_one(false, wid, nwg, lid);
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
@group(0) @binding(1) var<storage, read> wte: array<f16>;
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
  let tok = min(idx[n], pe.V - 1u);
  emb[i] = f32(wte[tok * pe.C + c]) + wpe[t * pe.C + c];
}
