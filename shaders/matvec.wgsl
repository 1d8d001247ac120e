// matvec.wgsl — products with few rows as dot products against weights stored as rows (f32): GPT-2's
// linear layers and tied head (gpu/gpt2_model.py), decoding one token (N = 1) and the prompt's rows.
// (A tile of matmul.wgsl would compute TM rows for one when decoding and give only ceil(M / TN)
// workgroups, each walking all of K serially.) matvec_f16.wgsl has the same entries for f16 weights.
//
// Math (numpy), w stored (Mp, K), Mp >= M rows, one per output; rows M.. are never read:
//   matvec_rows:               out = x @ w[:M].T                 x (N,K) -> out (N,M)
//       GPT-2's tied head: logits (N,V) = x (N,C) @ wte[:V].T, wte stored (Vp,C).
//   matvec_rows_bias:          y = x @ w[:M].T + b               b (M,) -> y (N,M)
//   matvec_rows_bias_gelu:     y = gelu(x @ w[:M].T + b)         GPT-2's tanh GELU (elementwise.wgsl's)
//   matvec_rows_bias_residual: y = res + (x @ w[:M].T + b)       res (N,M)
//       GPT-2's qkv, attn.c_proj, mlp.c_fc and mlp.c_proj: its Conv1D weight (K,M) is stored transposed.
//   matvec_rows_ln_bias, matvec_rows_ln_bias_gelu: the _bias ones with layernorm(x) for x,
//       xn = (x - mean) / sqrt(var + eps) * g + beta per row (mean, var over K; g, beta (K,)):
//       GPT-2's ln_1 + qkv and ln_2 + mlp.c_fc in one dispatch each. (ln_f stays apart: folded into the
//       tied head, each of its V / (WG / LANES) workgroups would take the row's statistics again.)
//   pack_rows_transposed:      dst (M,K) = src (K,M).T, a chunk of src's rows at a time (on upload)
// All f32, row-major; K % 4 == 0. accumulate = 0 overwrites out / y, 1 adds into it.
// How the work is laid out: matvec_body.wgsl's header.
//
// Bindings (group 0, uniform last):
//   matvec_rows:                    0 x (read), 1 w (read), 2 out (read_write), 3 params
//   matvec_rows_bias, _bias_gelu:   0 x, 1 w, 2 b (read), 3 y (read_write), 4 params
//   matvec_rows_bias_residual:      0 x, 1 w, 2 b, 3 res (read), 4 y (read_write), 5 params
//   matvec_rows_ln_bias, _gelu:     0 x, 1 g, 2 beta, 3 w, 4 b (read), 5 y (read_write), 6 LnMatmulParams
//   pack_rows_transposed:           0 src (read), 1 dst (read_write), 2 PackParams {n, M, K, row0}
//   params: MatmulParams {N rows of x, K the dot products' length, M outputs per row, accumulate};
//   LnMatmulParams {N, K, M, eps} (the _ln entries overwrite their output)
// Overrides: WG = 64 invocations (a power of two); LANES = 8 per row of w (a power of two dividing WG).
//   gpu/matmul_rules.py's matvec_rows_overrides picks them per adapter.
// Grid: matvec_rows*: grid_1d(ceil(M / (WG / LANES)) * WG, WG); pack_rows_transposed: grid_1d(n, WG)
// Entry points: matvec_rows, matvec_rows_bias, matvec_rows_bias_gelu, matvec_rows_bias_residual,
//   matvec_rows_ln_bias, matvec_rows_ln_bias_gelu, pack_rows_transposed

alias W4 = vec4<f32>;

fn widen4(v: W4) -> vec4<f32> { return v; }

// #include "matvec_body.wgsl"

@compute @workgroup_size(WG)
fn matvec_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  rows_plain(wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  rows_bias(false, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_bias_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  rows_bias(true, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_bias_residual(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
  rows_bias_residual(wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_ln_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  rows_ln_bias(false, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn matvec_rows_ln_bias_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  rows_ln_bias(true, wid, nwg, lid);
}

// --- pack_rows_transposed: a checkpoint's (K,M) weights into rows, on upload ------------------------------
// A chunk of n = rows * M values of src (K, M), f32 row-major, holding its rows row0..:
//   dst[m * K + row0 + r] = src[r * M + m]          dst (M, K). One invocation per value of the chunk.
struct PackParams {
  n: u32,
  M: u32,
  K: u32,
  row0: u32,
};

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> pp: PackParams;

@compute @workgroup_size(WG)
fn pack_rows_transposed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;
  if (i >= pp.n) { return; }
  let r = i / pp.M;
  let m = i % pp.M;
  dst[m * pp.K + pp.row0 + r] = src[i];
}
