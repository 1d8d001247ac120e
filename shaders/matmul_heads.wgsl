// matmul_heads.wgsl — the attention's per-head products in f32 on CUDA cores, for the fp32 step's
// attention with materialised scores (gpu/materialized_attention.py, products "f32"): small batched
// products with strided operands, the f32 twin of matmul_coop.wgsl's STRIDED form.
//
// Math (numpy, per batch z = (b, h) = (z / heads, z % heads)):
//   y = out_scale * ((a_scale * A) @ (b_scale * B)), f32 sums
//   A (N,K) row-major, or stored (K,N) (A_T); B (K,M) row-major, or stored (M,K) (B_T); y (N,M).
// Shapes and strides: row r of A's stored layout starts at float a_off + r * lda, of B's at b_off + r *
//   ldb, of y's at y_off + r * ldy, with a_off = a_base + b * a_bs + h * a_hs (b_off, y_off alike). Each
//   operand's contiguous dimension, M, every stride and offset: multiples of 4 (vec4 loads and
//   stores). Edges past N, K, M load zeros and are not stored.
// CAUSAL (square causal products, N = the context) as in matmul_coop.wgsl: 0 none; 1 blocks wholly
//   above the diagonal store nothing (scores); 2 A (N,K) is 0 where k > n, so a block's k-slices end at
//   its last row; 3 A stored (K,N) is 0 where k < n, so they start at its first row.
// Bindings (group 0): 0 a (read), 1 b (read), 2 y (read_write), 3 params (matmul_coop.wgsl's uniform:
//   N, K, M, a_scale, b_scale, out_scale, part_stride (unused), lda, ldb, ldy, heads, batches, a_base,
//   a_bs, a_hs, b_base, b_bs, b_hs, y_base, y_bs, y_hs).
// Overrides: A_T, B_T, CAUSAL. Blocks are constants: 64 x 64 outputs per workgroup of 16 x 16
//   invocations, each 4 x 4 (rows ty*4.., columns tx*4..); k-slices of 16.
// Grid: (ceil(M / 64), ceil(N / 64), batches).
// Workgroup memory: the slice of A as [k][row / 4] and of B as [k][column / 4], vec4: 8 KiB (WebGPU's
//   default 16 KiB holds it). One vec4 of A's and one of B's slice per invocation per slice: staged
//   transposed (four scalar stores) where the stored layout runs along k.

override A_T: u32 = 0u;
override B_T: u32 = 0u;
override CAUSAL: u32 = 0u;
const BM: u32 = 64u;
const BK: u32 = 16u;

// #include "strided_params.wgsl"

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: StridedParams;

var<workgroup> a_sh: array<vec4<f32>, 256>;  // [k][row / 4]
var<workgroup> b_sh: array<vec4<f32>, 256>;  // [k][column / 4]

// Invocation lid's vec4 of the slice at k0: A's rows row0.. (B's columns col0..) in [k][x / 4] order.
fn stage_a(lid: u32, a_off: u32, row0: u32, k0: u32) {
  if (A_T == 1u) {  // stored (K,N): the vec4 runs along rows
    let k = lid / 16u;
    let n = row0 + (lid % 16u) * 4u;
    var v = vec4<f32>(0.0);
    if (k0 + k < p.K && n < p.N) { v = a[(a_off + (k0 + k) * p.lda + n) / 4u]; }
    a_sh[lid] = v * p.a_scale;
  } else {          // stored (N,K): the vec4 runs along k; staged transposed
    let n = lid / 4u;
    let k = (lid % 4u) * 4u;
    var v = vec4<f32>(0.0);
    if (row0 + n < p.N && k0 + k < p.K) { v = a[(a_off + (row0 + n) * p.lda + k0 + k) / 4u]; }
    v *= p.a_scale;
    for (var i = 0u; i < 4u; i++) { a_sh[(k + i) * 16u + n / 4u][n % 4u] = v[i]; }
  }
}

fn stage_b(lid: u32, b_off: u32, col0: u32, k0: u32) {
  if (B_T == 1u) {  // stored (M,K): the vec4 runs along k; staged transposed
    let m = lid / 4u;
    let k = (lid % 4u) * 4u;
    var v = vec4<f32>(0.0);
    if (col0 + m < p.M && k0 + k < p.K) { v = b[(b_off + (col0 + m) * p.ldb + k0 + k) / 4u]; }
    v *= p.b_scale;
    for (var i = 0u; i < 4u; i++) { b_sh[(k + i) * 16u + m / 4u][m % 4u] = v[i]; }
  } else {          // stored (K,M): the vec4 runs along columns
    let k = lid / 16u;
    let m = col0 + (lid % 16u) * 4u;
    var v = vec4<f32>(0.0);
    if (k0 + k < p.K && m < p.M) { v = b[(b_off + (k0 + k) * p.ldb + m) / 4u]; }
    b_sh[lid] = v * p.b_scale;
  }
}

@compute @workgroup_size(256)
fn matmul_heads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row0 = wid.y * BM;
  let col0 = wid.x * BM;
  if (CAUSAL == 1u && col0 >= row0 + BM) { return; }  // wholly above the diagonal (uniform)
  let bb = wid.z / p.heads;
  let hh = wid.z % p.heads;
  let a_off = p.a_base + bb * p.a_bs + hh * p.a_hs;
  let b_off = p.b_base + bb * p.b_bs + hh * p.b_hs;
  let y_off = p.y_base + bb * p.y_bs + hh * p.y_hs;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var lo = 0u;
  var hi = (p.K + BK - 1u) / BK;
  if (CAUSAL == 2u) { hi = min(hi, (row0 + BM + BK - 1u) / BK); }
  if (CAUSAL == 3u) { lo = min(row0 / BK, hi); }
  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0); var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  for (var s = lo; s < hi; s++) {
    stage_a(lid, a_off, row0, s * BK);
    stage_b(lid, b_off, col0, s * BK);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let av = a_sh[k * 16u + ty];  // rows ty*4 .. +3
      let bv = b_sh[k * 16u + tx];  // columns tx*4 .. +3
      acc0 += av.x * bv; acc1 += av.y * bv; acc2 += av.z * bv; acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let c = col0 + tx * 4u;
  if (c >= p.M) { return; }
  let r = row0 + ty * 4u;
  if (r < p.N) { y[(y_off + r * p.ldy + c) / 4u] = acc0 * p.out_scale; }
  if (r + 1u < p.N) { y[(y_off + (r + 1u) * p.ldy + c) / 4u] = acc1 * p.out_scale; }
  if (r + 2u < p.N) { y[(y_off + (r + 2u) * p.ldy + c) / 4u] = acc2 * p.out_scale; }
  if (r + 3u < p.N) { y[(y_off + (r + 3u) * p.ldy + c) / 4u] = acc3 * p.out_scale; }
}
