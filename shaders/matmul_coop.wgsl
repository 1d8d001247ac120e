// matmul_coop.wgsl — the linear layers' products on the GPU's matrix units (tensor cores), for mixed-
// precision training: f32 operands in global memory, rounded to f16 as they are staged, multiplied by
// subgroup matrices (16 x 16 x 16, f16 in, f32 accumulated), f32 results.
//
// Math (numpy; reference/mixed.py matmul_mixed):
//   y = epilogue(out_scale * (f16(a_scale * A) @ f16(b_scale * B)))
//   A (N,K) row-major, or stored (K,N) (A_T: x for dw = x.T @ dy);
//   B (K,M) row-major, or stored (M,K) (B_T: w for dx = dy @ w.T). y (N,M) row-major.
//   a_scale, b_scale, out_scale: powers of two (the backward scales its gradient operand into f16's
//   normal range, and out_scale undoes it exactly); f16() rounds to nearest even.
//   EPI (override): 0 y = r; 1 y = relu(r); 2 y = e + r (the residual add; e (N,M));
//                   3 y = r * (e > 0) (relu's backward: e = relu(pre) was the forward's output).
// Shapes: any N, K, M with the operands' contiguous dimension and M a multiple of 4 (vec4 loads and
//   stores; matmul_rules.coop_ok checks it); edges past N, K, M load zeros and are not stored.
// Strides and batches (STRIDED = 1: the attention's per-head products, gpu/materialized_attention.py):
//   row r of A's stored layout starts at float a_off + r * lda, of B's at b_off + r * ldb, of y's (and e's)
//   at y_off + r * ldy. Batch z (of `batches`) is (b, h) = (z / heads, z % heads), and a_off = a_base
//   + b * a_bs + h * a_hs (b_off, y_off alike). Every stride and offset is a multiple of 4 floats.
//   STRIDED = 0 (the linear layers): one batch, lda = K (N if A_T), ldb = M (K if B_T), ldy = M and
//   offsets 0 as constants of the pipeline, whatever the uniform holds.
// Bindings (group 0): 0 a (read), 1 b (read), 2 e (read; unused unless EPI >= 2: bind any buffer),
//   3 y (read_write), 4 parts (read_write; unused unless KSPLIT > 1: bind any other buffer),
//   5 params (N, K, M, a_scale, b_scale, out_scale, part_stride, lda, ldb, ldy, heads, batches,
//   a_base, a_bs, a_hs, b_base, b_bs, b_hs, y_base, y_bs, y_hs).
// Overrides: WY x WX subgroups of SG (32) invocations per workgroup; each subgroup owns RT x CT result
//   tiles of 16 x 16 (1..4 each: named accumulators), so a workgroup computes a BM x BN block,
//   BM = WY * RT * 16, BN = WX * CT * 16. BK = the k-slice staged at once (16, 32 or 64). Each
//   invocation stages BM * BK / 4 / THREADS vec4 of A and BK * BN / 4 / THREADS of B per slice: whole
//   numbers from 1 to 8 (coop_rules.coop_block_ok).
//   A_T, B_T, EPI as above.
//   KSPLIT: the k-slices cut into KSPLIT runs of consecutive slices, one per workgroup z % KSPLIT (for
//   products with few outputs and a long K: the dw products; one batch only). Run 0 is stored into y;
//   run z >= 1, times out_scale and with no epilogue, into parts[(z - 1) * part_stride + n * M + m]
//   (floats), which add_parts (split_reduce.wgsl) adds into y afterwards. Only EPI 0 may be split (an
//   epilogue would see a partial sum).
//   STRIDED: 1 reads the strides and batch offsets above from the uniform.
//   CAUSAL (square causal products, N = the context): 0 none; 1 only blocks with a row >= a column are
//   computed (blocks wholly above the diagonal store nothing: scores); 2 A (N,K) is 0 where k > n, so a
//   block's k-slices end at its last row (P @ v); 3 A stored (K,N) is 0 where k < n, so they start at
//   its first row (P.T @ dy).
// Grid: (ceil(M / BN), ceil(N / BM), KSPLIT * batches).
// Needs: the features shader-f16 and chromium-experimental-subgroup-matrix with an f16 16x16x16
//   configuration with f32 results and subgroup size 32 (Dawn; adapter_inputs.coop_matrix_usable).
//
// How: each k-slice of A (BM x BK) and B (BK x BN) is staged in workgroup memory as f16, in the
// operand's own layout (so each invocation's global loads are vec4 along the contiguous dimension,
// coalesced), and the subgroup matrix loads read it row- or column-major to match. Two buffers: the
// next slice's global loads are held in registers while the current slice is multiplied, then
// stored into the other buffer; one barrier per slice. Rows are padded by 8 halves so the matrix loads
// of neighbouring rows start in different banks. The epilogue passes each result tile through a
// per-subgroup 16 x 16 f32 scratch, where every invocation takes 8 outputs (two vec4) of a row.
// `chromium.subgroup_matrix_uniformity` is off: the matrix builtins' offsets depend on the subgroup's
// index, uniform within the subgroup, which is all a subgroup matrix operation needs.

enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);

override SG: u32 = 32u;
override WY: u32 = 2u;
override WX: u32 = 2u;
override RT: u32 = 2u;
override CT: u32 = 2u;
override BK: u32 = 32u;
override A_T: u32 = 0u;  // 1: A stored (K,N)
override B_T: u32 = 0u;  // 1: B stored (M,K)
override EPI: u32 = 0u;
override KSPLIT: u32 = 1u;
override CAUSAL: u32 = 0u;
override STRIDED: u32 = 0u;

override THREADS: u32 = SG * WY * WX;
override BM: u32 = WY * RT * 16u;
override BN: u32 = WX * CT * 16u;
const PAD: u32 = 8u;
// the staged tiles in their global layout: rows x (cols + PAD) halves
override A_COLS: u32 = select(BK, BM, A_T == 1u);   // contiguous dimension of A's tile
override A_ROWS: u32 = select(BM, BK, A_T == 1u);
override B_COLS: u32 = select(BN, BK, B_T == 1u);
override B_ROWS: u32 = select(BK, BN, B_T == 1u);
override A_STRIDE: u32 = A_COLS + PAD;
override B_STRIDE: u32 = B_COLS + PAD;
override A_SIZE: u32 = A_ROWS * A_STRIDE;
override B_SIZE: u32 = B_ROWS * B_STRIDE;
override A_LOADS: u32 = A_ROWS * A_COLS / 4u / THREADS;  // vec4 per invocation per slice (1 .. 8)
override B_LOADS: u32 = B_ROWS * B_COLS / 4u / THREADS;

// #include "strided_params.wgsl"

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> e: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> parts: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> p: StridedParams;

var<workgroup> a_sh: array<f16, 2u * A_SIZE>;
var<workgroup> b_sh: array<f16, 2u * B_SIZE>;
var<workgroup> scratch: array<f32, 256u * WY * WX>;

// this workgroup's batch: the first float of its A, B and y (set once by the entry point; STRIDED only)
var<private> a_off: u32;
var<private> b_off: u32;
var<private> y_off: u32;

// Row strides and batch offsets of the stored layouts: the uniform's (STRIDED), else the packed ones as
// constants of the pipeline (the plain products' code does not change with the strided form).
fn lda() -> u32 { if (STRIDED == 1u) { return p.lda; } return select(p.K, p.N, A_T == 1u); }
fn ldb() -> u32 { if (STRIDED == 1u) { return p.ldb; } return select(p.M, p.K, B_T == 1u); }
fn ldy() -> u32 { if (STRIDED == 1u) { return p.ldy; } return p.M; }
fn a_at() -> u32 { if (STRIDED == 1u) { return a_off; } return 0u; }
fn b_at() -> u32 { if (STRIDED == 1u) { return b_off; } return 0u; }
fn y_at() -> u32 { if (STRIDED == 1u) { return y_off; } return 0u; }

alias L = subgroup_matrix_left<f16, 16, 16>;    // 16 rows (of A) x 16 k
alias R = subgroup_matrix_right<f16, 16, 16>;   // 16 k x 16 columns (of B)
alias Acc = subgroup_matrix_result<f32, 16, 16>;

// The v-th vec4 of A's (resp. B's) tile for the slice at k0, zero past the operand's edges, as f16.
fn load_a(v: u32, row0: u32, k0: u32) -> vec4<f16> {
  let r = v / (A_COLS / 4u);
  let c = (v % (A_COLS / 4u)) * 4u;
  var x = vec4<f32>(0.0);
  if (A_T == 1u) {  // stored (K,N): tile rows are k, columns are output rows
    if (k0 + r < p.K && row0 + c < p.N) { x = a[(a_at() + (k0 + r) * lda() + row0 + c) / 4u]; }
  } else {
    if (row0 + r < p.N && k0 + c < p.K) { x = a[(a_at() + (row0 + r) * lda() + k0 + c) / 4u]; }
  }
  return vec4<f16>(x * p.a_scale);
}

fn load_b(v: u32, col0: u32, k0: u32) -> vec4<f16> {
  let r = v / (B_COLS / 4u);
  let c = (v % (B_COLS / 4u)) * 4u;
  var x = vec4<f32>(0.0);
  if (B_T == 1u) {  // stored (M,K): tile rows are output columns, columns are k
    if (col0 + r < p.M && k0 + c < p.K) { x = b[(b_at() + (col0 + r) * ldb() + k0 + c) / 4u]; }
  } else {
    if (k0 + r < p.K && col0 + c < p.M) { x = b[(b_at() + (k0 + r) * ldb() + col0 + c) / 4u]; }
  }
  return vec4<f16>(x * p.b_scale);
}

fn put_a(v: u32, buf: u32, x: vec4<f16>) {
  let i = buf * A_SIZE + (v / (A_COLS / 4u)) * A_STRIDE + (v % (A_COLS / 4u)) * 4u;
  a_sh[i] = x.x; a_sh[i + 1u] = x.y; a_sh[i + 2u] = x.z; a_sh[i + 3u] = x.w;
}

fn put_b(v: u32, buf: u32, x: vec4<f16>) {
  let i = buf * B_SIZE + (v / (B_COLS / 4u)) * B_STRIDE + (v % (B_COLS / 4u)) * 4u;
  b_sh[i] = x.x; b_sh[i + 1u] = x.y; b_sh[i + 2u] = x.z; b_sh[i + 3u] = x.w;
}

// Result tiles i (row) / j (column) of the subgroup's block at k kk of buffer buf.
fn left(buf: u32, sr: u32, i: u32, kk: u32) -> L {
  if (A_T == 1u) { return subgroupMatrixLoad<L, col_major>(&a_sh, buf * A_SIZE + kk * A_STRIDE + sr + i * 16u, A_STRIDE); }
  return subgroupMatrixLoad<L, row_major>(&a_sh, buf * A_SIZE + (sr + i * 16u) * A_STRIDE + kk, A_STRIDE);
}

fn right(buf: u32, sc: u32, j: u32, kk: u32) -> R {
  if (B_T == 1u) { return subgroupMatrixLoad<R, col_major>(&b_sh, buf * B_SIZE + (sc + j * 16u) * B_STRIDE + kk, B_STRIDE); }
  return subgroupMatrixLoad<R, row_major>(&b_sh, buf * B_SIZE + kk * B_STRIDE + sc + j * 16u, B_STRIDE);
}

// One result tile out through the subgroup's scratch: invocation `lane` takes row lane / 2, columns
// (lane % 2) * 8 .. + 8 of it; k-run `part` > 0 goes to parts. Called by every subgroup alike (the
// barriers need uniform control flow).
fn store_tile(acc: Acc, sg: u32, lane: u32, row: u32, col: u32, part: u32) {
  subgroupMatrixStore<row_major>(&scratch, sg * 256u, acc, 16u);
  workgroupBarrier();
  let r = row + lane / 2u;
  let c = col + (lane % 2u) * 8u;
  let s = sg * 256u + (lane / 2u) * 16u + (lane % 2u) * 8u;
  for (var h = 0u; h < 2u; h++) {
    let cc = c + h * 4u;
    if (r < p.N && cc < p.M) {
      var v = vec4<f32>(scratch[s + h * 4u], scratch[s + h * 4u + 1u], scratch[s + h * 4u + 2u],
                        scratch[s + h * 4u + 3u]) * p.out_scale;
      if (KSPLIT > 1u && part > 0u) {
        parts[((part - 1u) * p.part_stride + r * p.M + cc) / 4u] = v;
        continue;
      }
      let i = (y_at() + r * ldy() + cc) / 4u;
      if (EPI == 1u) { v = max(v, vec4<f32>(0.0)); }
      if (EPI == 2u) { v = e[i] + v; }
      if (EPI == 3u) { v = select(vec4<f32>(0.0), v, e[i] > vec4<f32>(0.0)); }
      y[i] = v;
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(THREADS)
fn matmul_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  if (CAUSAL == 1u && col0 >= row0 + BM) { return; }  // wholly above the diagonal (uniform: whole workgroup)
  let run = wid.z % KSPLIT;
  if (STRIDED == 1u) {
    let batch = wid.z / KSPLIT;
    let bb = batch / p.heads;
    let hh = batch % p.heads;
    a_off = p.a_base + bb * p.a_bs + hh * p.a_hs;
    b_off = p.b_base + bb * p.b_bs + hh * p.b_hs;
    y_off = p.y_base + bb * p.y_bs + hh * p.y_hs;
  }
  let sg = lid / SG;
  let lane = lid % SG;
  let sr = (sg / WX) * RT * 16u;  // the subgroup's first row / column within the block
  let sc = (sg % WX) * CT * 16u;
  var c00 = Acc(); var c01 = Acc(); var c02 = Acc(); var c03 = Acc();
  var c10 = Acc(); var c11 = Acc(); var c12 = Acc(); var c13 = Acc();
  var c20 = Acc(); var c21 = Acc(); var c22 = Acc(); var c23 = Acc();
  var c30 = Acc(); var c31 = Acc(); var c32 = Acc(); var c33 = Acc();
  // the next slice's share of A and B, in named registers (A_LOADS, B_LOADS <= 8): with an indexed
  // private array, 4096^3 ran at 51.7 TFLOP/s instead of 64.1 (the bench's GEMM tables,
  // gpu-h100-dawn-mixed-2026-12-07-arrays.json and gpu-h100-dawn-mixed-2026-12-07.json)
  var ra0: vec4<f16>; var ra1: vec4<f16>; var ra2: vec4<f16>; var ra3: vec4<f16>;
  var ra4: vec4<f16>; var ra5: vec4<f16>; var ra6: vec4<f16>; var ra7: vec4<f16>;
  var rb0: vec4<f16>; var rb1: vec4<f16>; var rb2: vec4<f16>; var rb3: vec4<f16>;
  var rb4: vec4<f16>; var rb5: vec4<f16>; var rb6: vec4<f16>; var rb7: vec4<f16>;
  // this workgroup's k-run: slices first .. last - 1 of lo .. hi - 1 (all of them unless KSPLIT > 1 or
  // CAUSAL > 1; a run past them multiplies nothing and stores zeros)
  var lo = 0u;
  var hi = (p.K + BK - 1u) / BK;
  if (CAUSAL == 2u) { hi = min(hi, (row0 + BM + BK - 1u) / BK); }
  if (CAUSAL == 3u) { lo = min(row0 / BK, hi); }
  let per = (hi - lo + KSPLIT - 1u) / KSPLIT;
  let first = min(lo + run * per, hi);
  let last = min(first + per, hi);
  for (var v = 0u; v < A_LOADS; v++) { put_a(lid + v * THREADS, 0u, load_a(lid + v * THREADS, row0, first * BK)); }
  for (var v = 0u; v < B_LOADS; v++) { put_b(lid + v * THREADS, 0u, load_b(lid + v * THREADS, col0, first * BK)); }
  workgroupBarrier();
  for (var s = first; s < last; s++) {
    let buf = (s - first) & 1u;
    let more = s + 1u < last;
    if (more) {
      ra0 = load_a(lid + 0u * THREADS, row0, (s + 1u) * BK);
      if (A_LOADS > 1u) { ra1 = load_a(lid + 1u * THREADS, row0, (s + 1u) * BK); }
      if (A_LOADS > 2u) { ra2 = load_a(lid + 2u * THREADS, row0, (s + 1u) * BK); }
      if (A_LOADS > 3u) { ra3 = load_a(lid + 3u * THREADS, row0, (s + 1u) * BK); }
      if (A_LOADS > 4u) { ra4 = load_a(lid + 4u * THREADS, row0, (s + 1u) * BK); }
      if (A_LOADS > 5u) { ra5 = load_a(lid + 5u * THREADS, row0, (s + 1u) * BK); }
      if (A_LOADS > 6u) { ra6 = load_a(lid + 6u * THREADS, row0, (s + 1u) * BK); }
      if (A_LOADS > 7u) { ra7 = load_a(lid + 7u * THREADS, row0, (s + 1u) * BK); }
      rb0 = load_b(lid + 0u * THREADS, col0, (s + 1u) * BK);
      if (B_LOADS > 1u) { rb1 = load_b(lid + 1u * THREADS, col0, (s + 1u) * BK); }
      if (B_LOADS > 2u) { rb2 = load_b(lid + 2u * THREADS, col0, (s + 1u) * BK); }
      if (B_LOADS > 3u) { rb3 = load_b(lid + 3u * THREADS, col0, (s + 1u) * BK); }
      if (B_LOADS > 4u) { rb4 = load_b(lid + 4u * THREADS, col0, (s + 1u) * BK); }
      if (B_LOADS > 5u) { rb5 = load_b(lid + 5u * THREADS, col0, (s + 1u) * BK); }
      if (B_LOADS > 6u) { rb6 = load_b(lid + 6u * THREADS, col0, (s + 1u) * BK); }
      if (B_LOADS > 7u) { rb7 = load_b(lid + 7u * THREADS, col0, (s + 1u) * BK); }
    }
    for (var kk = 0u; kk < BK; kk += 16u) {
      let b0 = right(buf, sc, 0u, kk);
      var b1 = R(); var b2 = R(); var b3 = R();
      if (CT > 1u) { b1 = right(buf, sc, 1u, kk); }
      if (CT > 2u) { b2 = right(buf, sc, 2u, kk); }
      if (CT > 3u) { b3 = right(buf, sc, 3u, kk); }
      let a0 = left(buf, sr, 0u, kk);
      c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
      if (CT > 1u) { c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01); }
      if (CT > 2u) { c02 = subgroupMatrixMultiplyAccumulate(a0, b2, c02); }
      if (CT > 3u) { c03 = subgroupMatrixMultiplyAccumulate(a0, b3, c03); }
      if (RT > 1u) {
        let a1 = left(buf, sr, 1u, kk);
        c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
        if (CT > 1u) { c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11); }
        if (CT > 2u) { c12 = subgroupMatrixMultiplyAccumulate(a1, b2, c12); }
        if (CT > 3u) { c13 = subgroupMatrixMultiplyAccumulate(a1, b3, c13); }
      }
      if (RT > 2u) {
        let a2 = left(buf, sr, 2u, kk);
        c20 = subgroupMatrixMultiplyAccumulate(a2, b0, c20);
        if (CT > 1u) { c21 = subgroupMatrixMultiplyAccumulate(a2, b1, c21); }
        if (CT > 2u) { c22 = subgroupMatrixMultiplyAccumulate(a2, b2, c22); }
        if (CT > 3u) { c23 = subgroupMatrixMultiplyAccumulate(a2, b3, c23); }
      }
      if (RT > 3u) {
        let a3 = left(buf, sr, 3u, kk);
        c30 = subgroupMatrixMultiplyAccumulate(a3, b0, c30);
        if (CT > 1u) { c31 = subgroupMatrixMultiplyAccumulate(a3, b1, c31); }
        if (CT > 2u) { c32 = subgroupMatrixMultiplyAccumulate(a3, b2, c32); }
        if (CT > 3u) { c33 = subgroupMatrixMultiplyAccumulate(a3, b3, c33); }
      }
    }
    if (more) {
      put_a(lid + 0u * THREADS, buf ^ 1u, ra0);
      if (A_LOADS > 1u) { put_a(lid + 1u * THREADS, buf ^ 1u, ra1); }
      if (A_LOADS > 2u) { put_a(lid + 2u * THREADS, buf ^ 1u, ra2); }
      if (A_LOADS > 3u) { put_a(lid + 3u * THREADS, buf ^ 1u, ra3); }
      if (A_LOADS > 4u) { put_a(lid + 4u * THREADS, buf ^ 1u, ra4); }
      if (A_LOADS > 5u) { put_a(lid + 5u * THREADS, buf ^ 1u, ra5); }
      if (A_LOADS > 6u) { put_a(lid + 6u * THREADS, buf ^ 1u, ra6); }
      if (A_LOADS > 7u) { put_a(lid + 7u * THREADS, buf ^ 1u, ra7); }
      put_b(lid + 0u * THREADS, buf ^ 1u, rb0);
      if (B_LOADS > 1u) { put_b(lid + 1u * THREADS, buf ^ 1u, rb1); }
      if (B_LOADS > 2u) { put_b(lid + 2u * THREADS, buf ^ 1u, rb2); }
      if (B_LOADS > 3u) { put_b(lid + 3u * THREADS, buf ^ 1u, rb3); }
      if (B_LOADS > 4u) { put_b(lid + 4u * THREADS, buf ^ 1u, rb4); }
      if (B_LOADS > 5u) { put_b(lid + 5u * THREADS, buf ^ 1u, rb5); }
      if (B_LOADS > 6u) { put_b(lid + 6u * THREADS, buf ^ 1u, rb6); }
      if (B_LOADS > 7u) { put_b(lid + 7u * THREADS, buf ^ 1u, rb7); }
    }
    workgroupBarrier();
  }
  let r = row0 + sr;
  let c = col0 + sc;
  store_tile(c00, sg, lane, r, c, run);
  if (CT > 1u) { store_tile(c01, sg, lane, r, c + 16u, run); }
  if (CT > 2u) { store_tile(c02, sg, lane, r, c + 32u, run); }
  if (CT > 3u) { store_tile(c03, sg, lane, r, c + 48u, run); }
  if (RT > 1u) {
    store_tile(c10, sg, lane, r + 16u, c, run);
    if (CT > 1u) { store_tile(c11, sg, lane, r + 16u, c + 16u, run); }
    if (CT > 2u) { store_tile(c12, sg, lane, r + 16u, c + 32u, run); }
    if (CT > 3u) { store_tile(c13, sg, lane, r + 16u, c + 48u, run); }
  }
  if (RT > 2u) {
    store_tile(c20, sg, lane, r + 32u, c, run);
    if (CT > 1u) { store_tile(c21, sg, lane, r + 32u, c + 16u, run); }
    if (CT > 2u) { store_tile(c22, sg, lane, r + 32u, c + 32u, run); }
    if (CT > 3u) { store_tile(c23, sg, lane, r + 32u, c + 48u, run); }
  }
  if (RT > 3u) {
    store_tile(c30, sg, lane, r + 48u, c, run);
    if (CT > 1u) { store_tile(c31, sg, lane, r + 48u, c + 16u, run); }
    if (CT > 2u) { store_tile(c32, sg, lane, r + 48u, c + 32u, run); }
    if (CT > 3u) { store_tile(c33, sg, lane, r + 48u, c + 48u, run); }
  }
}
