// matmul.wgsl — the linear layer y = x @ w, the products its backward needs, and fused variants.
// The tile machinery (overrides, bindings, workgroup tiles, accumulators, staging, stores) is in
// matmul_tiles.wgsl, pasted in where the `#include` line below stands (registry.shader_source does it
// for every host); the vec4-load twins of these entries are in matmul_vec4.wgsl.
//
// Math (numpy, reference/ops.py matmul_forward / matmul_backward):
//   matmul_forward:          y  = x @ w                 x (N,K), w (K,M)  -> y  (N,M)
//   matmul_forward_residual: y  = res + x @ w           res (N,M) (the residual add after proj / fc_proj)
//   matmul_backward_dx:      dx = dy @ w.T              dy (N,M), w (K,M) -> dx (N,K)
//   matmul_backward_dw:      dw = x.T @ dy              x (N,K), dy (N,M) -> dw (K,M)
//   matmul_backward:         dx and dw in ONE dispatch  (workgroups [0, dx tiles) do dx, the rest dw)
//   matmul_backward_relu:    as matmul_backward with dx *= (x > 0): x = relu(pre) was the forward input,
//                            so dx is the gradient of `pre` (relu's derivative at 0 is taken as 0)
//   matmul_forward_rmsnorm:  rstd = 1 / sqrt(mean(x**2, axis=1) + eps);  xn = x * rstd[:, None] * g
//                            y = xn @ w                 g (K,), rstd (N,), xn (N,K) (rmsnorm_forward, then
//                            the product: the pre-norm block's norm folded into the matmul after it)
//   matmul_forward_rmsnorm_relu: y = relu(xn @ w), xn as above (the MLP's fc: only the activation is kept)
//   matmul_forward_bias:     y  = x @ w + b             b (M,) (reference/ops_gpt2.py linear_forward)
//   matmul_forward_bias_gelu: y = gelu(x @ w + b)       GPT-2's tanh GELU (ops_gpt2.gelu_forward): its MLP's fc
//   matmul_forward_bias_residual: y = res + (x @ w + b) res (N,M) (GPT-2's c_proj: the residual add)
// All arrays f32, row-major. The uniform fields are the FORWARD's N, K, M for every entry.
// accumulate = 0: out = result (overwrite); accumulate = 1: out += result (every output of the entry).
// The rmsnorm entries have eps in its place and always overwrite y, xn and rstd. Every workgroup
// computes the rstd of its TM rows first (one extra pass over its A rows, K = C: cheap next to the
// product), then scales the A rows by rstd[row] * g[k] while staging them; the workgroups of tile
// column 0 (wid.x == 0) also store xn and rstd, which the backward needs (each row block has
// exactly one such workgroup).
// Every entry has a vec4-load twin, the same name + "_v4" (matmul_forward_v4, ..._rmsnorm_relu_v4):
// the same math, bindings, uniform, overrides and grid, BIT-IDENTICAL outputs, but each global read
// is one 16-byte vec4 load. Precondition: K % 4 == 0 and M % 4 == 0 (N is free); the host checks it
// (registry.matmul_entry picks the twin). See the section at the end of this file.
//
// Bindings (group 0), uniform last (the _v4 twins: the same; they read in0v..in2v, write xn via out4v):
//   matmul_forward, backward_dx, backward_dw: 0 a (read), 1 b (read), 2 out (read_write), 3 params
//       forward: x, w, y        backward_dx: dy, w, dx        backward_dw: x, dy, dw
//   matmul_forward_residual: 0 x, 1 w, 2 res (read), 3 y (read_write), 4 params
//   matmul_backward, _relu:  0 x, 1 w, 2 dy (read), 3 dx (read_write), 4 dw (read_write), 5 params
//   matmul_forward_rmsnorm, _relu: 0 x, 1 w, 2 g (read), 3 y, 4 xn, 5 rstd (read_write),
//                            6 params (NormMatmulParams)
//   matmul_forward_bias, _bias_gelu: 0 x, 1 w, 2 b (read), 3 y (read_write), 4 params
//   matmul_forward_bias_residual: 0 x, 1 w, 2 b, 3 res (read), 4 y (read_write), 5 params
//       (their _v4 twins read b and res as f32 arrays: in2, in3)
// Overrides: TM, TN = output rows / columns per workgroup, each 32, 64 or 128 (default 64). Every
//   invocation owns an RPI x RPI block of outputs (RPI = 8, the default, or 4), so a workgroup has
//   (TN/RPI) x (TM/RPI) invocations (16 x 16 at 128 x 128). Large products want 128 x 128 at RPI 8
//   (64 FMAs per 4 vec4 reads of workgroup memory); small ones want small tiles and RPI 4 so that
//   enough invocations run (matmul_rules.matmul_tiles, matmul_small_outputs pick). RPI x RPI blocks at
//   128 x 128 and RPI 4 would be 1024 invocations: more than WebGPU's default limit of 256.
//   KGROUPS = 1 (default), 2, 4, 8 (not the rmsnorm entries): sliced K, a workgroup of KGROUPS x
//   (TN/RPI) x (TM/RPI) invocations (lid.z = group) whose groups multiply consecutive k-slices and add
//   their results in group order at the end (matmul_tiles.wgsl's reduce_groups); for products with
//   very few tiles (matmul_rules.matmul_forward_kgroups). SPLIT, DX_SPLIT: the split entries (below).
// Grid: (ceil(out_cols / TN), ceil(out_rows / TM), 1):
//   forward* (the rmsnorm entries too) (ceil(M/TN), ceil(N/TM)), backward_dx (ceil(K/TN), ceil(N/TM)),
//   backward_dw (ceil(M/TN), ceil(K/TM));
//   matmul_backward*: the dx tiles then the dw tiles, numbered flat over (x, y) (registry.grid_1d).
//
// Every product is out (R, Q) = A (R, I) @ B (I, Q) over an inner dimension I; the entries differ
// in where A and B come from and how they are laid out (row-major or stored transposed). Edges past
// R, I, Q load zeros and are not stored, so any shape works. Speed notes (naga / wgpu-native and
// Tint / Dawn): the 64 accumulators are 16 named vec4 (no dynamically indexed function-scope
// arrays: naga makes them slow); the tiles live in workgroup memory as vec4 along the output
// dimension, k-major, so the inner loop reads 4 vec4 per 64 FMAs; each k row is padded by one vec4
// so the transposing stores of the global loads do not hit one bank (a row of T/4 + 1 vec4 is
// 4 (T/4 + 1) = 4 words mod 32 banks for T = 32, 64 and 128 alike). Global memory: the scalar
// entries read 4 f32 per vec4 slot (any shape works); the _v4 twins read one vec4 (array<vec4<f32>>
// bindings). In a stand-alone kernel of this design on an H200 under Dawn, vec4 loads take 4096^3
// from 0.50x to 0.61x PyTorch and 2048 x 512 x 2048 from ~0.34x to 0.69x
// (gemm-vec4-probe-h200-dawn-2026-11-22.json); on llvmpipe (a CPU) the twins are as fast as the
// scalar entries within noise.
// The workgroup arrays are sized by override expressions (2 * TK * row, TM rows of rstd), not by
// the largest tile: Dawn zero-fills workgroup memory in every shader (unless its
// disable_workgroup_init feature is on), and SwiftShader compiles that fill at about 2 ms per vec4,
// so a 32 x 32 pipeline with 128 x 128 arrays would take seconds to compile in the browser.

// #include "matmul_tiles.wgsl"
// #include "matmul_stores.wgsl"

// --- three-buffer entries: out2 (R,Q) = A @ B ------------------------------------------------------
fn three_buffer(src: Sources, kind: u32, A: Operand, B: Operand, R: u32, I: u32, Q: u32,
                wid: vec3<u32>, lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product(src, A, B, row0, col0, I, lid);
  store_out2(kind, row0, col0, R, Q, p3.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // y (N,M) = x (N,K) @ w (K,M)
  three_buffer(Sources(0u, 1u), EPI_PLAIN, operand(p3.K, 1u, p3.N), operand(1u, p3.M, p3.M),
               p3.N, p3.K, p3.M, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // dx (N,K) = dy (N,M) @ w.T: B element (m, k) = w[k * M + m]
  three_buffer(Sources(0u, 1u), EPI_PLAIN, operand(p3.M, 1u, p3.N), operand(p3.M, 1u, p3.K),
               p3.N, p3.M, p3.K, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_dw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // dw (K,M) = x.T @ dy (N,M): A element (k, n) = x[n * K + k]
  three_buffer(Sources(0u, 1u), EPI_PLAIN, operand(1u, p3.K, p3.K), operand(1u, p3.M, p3.M),
               p3.K, p3.N, p3.M, wid, lid);
}

// --- y = res + x @ w ---------------------------------------------------------------------------
@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_residual(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_in2(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, 0u, p4.K, lid);
  store_out3(EPI_RESIDUAL, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

// --- dx and dw in one dispatch -------------------------------------------------------------------
fn backward_both(dx_kind: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
  let N = p5.N;
  let K = p5.K;
  let M = p5.M;
  let tile = backward_tile(wid.y * nwg.x + wid.x, N, K, M);
  let acc = p5.accumulate != 0u;
  if (tile.x == 0u) {
    // dx (N,K) = dy (in2, (N,M)) @ w.T (in1 stored (K,M))
    product_in2(Sources(2u, 1u), operand(M, 1u, N), operand(M, 1u, K), tile.y, tile.z, 0u, M, lid);
    store_out3(dx_kind, tile.y, tile.z, N, K, acc, lid);
  } else if (tile.x == 1u) {
    // dw (K,M) = x.T (in0 stored (N,K)) @ dy (in2, (N,M))
    product_in2(Sources(0u, 2u), operand(1u, K, K), operand(1u, M, M), tile.y, tile.z, 0u, N, lid);
    store_out4(tile.y, tile.z, K, M, acc, lid);
  }
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both(EPI_PLAIN, wid, nwg, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both(EPI_RELU_MASK, wid, nwg, lid);
}

// --- dx and dw in one dispatch, dw's inner dimension split (matmul_backward_split, _relu_split) ----
// dw (K,M) = x.T @ dy sums over all N = B*T positions, while dx sums over only M: the dw tiles are
// few and long (the large model: 64 .. 256 tiles of a 2048-long sum next to dx's 256 .. 1024) and
// leave most of a big GPU idle at the dispatch's end. These entries cut dw's sum into SPLIT parts
// (SPLIT x more, SPLIT x shorter workgroups): part 0 goes into dw as matmul_backward's would
// (accumulate honoured), part s >= 1 into out5 (`dw_parts`) at (s - 1) * part_stride + i, and a later
// add_parts dispatch (split_reduce.wgsl) adds the parts into dw. dx's sum over M can be cut as well
// (DX_SPLIT, plain entry only): part 0 into dx, part s >= 1 right after it in the same binding (dx is
// then DX_SPLIT x (N,K) long), summed by the consumer (rmsnorm_backward's dy_parts). Grid: DX_SPLIT
// x dx tiles, then SPLIT x dw tiles (part-major), numbered flat.
fn backward_split(dx_kind: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
  let N = p6s.N;
  let K = p6s.K;
  let M = p6s.M;
  let acc = p6s.accumulate != 0u;
  let flat = wid.y * nwg.x + wid.x;
  let dx_workgroups = DX_SPLIT * ((K + TN - 1u) / TN) * ((N + TM - 1u) / TM);
  if (flat < dx_workgroups) {  // dx (N,K) = dy @ w.T, part s of the sum over M
    let e = split_dx_tile(flat, N, K, M);
    product_in2(Sources(2u, 1u), operand(M, 1u, N), operand(M, 1u, K), e.row0, e.col0, e.k_begin, e.k_end, lid);
    if (e.s == 0u) {
      store_out3(dx_kind, e.row0, e.col0, N, K, acc, lid);
    } else {
      store_out3_part(e.row0, e.col0, N, K, e.s * N * K, acc, lid);
    }
    return;
  }
  let d = split_dw_tile(flat - dx_workgroups, N, K, M);
  if (d.s >= SPLIT) { return; }
  product_in2(Sources(0u, 2u), operand(1u, K, K), operand(1u, M, M), d.row0, d.col0, d.k_begin, d.k_end, lid);
  if (d.s == 0u) {
    store_out4(d.row0, d.col0, K, M, acc, lid);
  } else {
    store_part(d.row0, d.col0, K, M, (d.s - 1u) * p6s.part_stride, acc, lid);
  }
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_split(EPI_PLAIN, wid, nwg, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_relu_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_split(EPI_RELU_MASK, wid, nwg, lid);
}

// --- y = rmsnorm(x) @ w: the norm in the prologue and the A staging ------------------------------
// rstd of rows row0 .. row0 + TM - 1 into rstd_sh; `keep` (tile column 0) also stores them into out5.
// The loads are the A staging's (coalesced: neighbouring invocations walk k): each invocation sums
// the squares of its staging slots over all k0 into a_tile (one owner per slot, so no barrier until
// the end), then each row adds its TK slot sums.
fn tile_rstd(row0: u32, N: u32, K: u32, eps: f32, tid: u32, keep: bool) {
  let threads = invocations();
  let A = operand(K, 1u, N);
  for (var e = tid; e < TK * TM / 4u; e += threads) {
    let s = load_slot(A, e, TM);
    var ss = vec4<f32>(0.0);  // rows row0 + 4 s.x .. +3 over k = s.y, s.y + TK, ...
    for (var k0 = 0u; k0 < K; k0 += TK) {
      let v = fetch0(A, row0 + s.x * 4u, k0 + s.y, K);
      ss += v * v;
    }
    a_tile[s.y * A_ROW4 + s.x] = ss;
  }
  workgroupBarrier();
  rstd_from_slot_sums(row0, N, K, eps, tid, keep);
}

// xn element (row, k) = x * rstd * g in rmsnorm_forward's order; `keep` also stores it into out4.
fn normed(row: u32, k: u32, row0: u32, K: u32, gk: f32, keep: bool) -> f32 {
  let i = row * K + k;
  let v = in0[i] * rstd_sh[row - row0] * gk;
  if (keep) { out4[i] = v; }
  return v;
}

// xn rows u .. u+3 at k (rows past N and k past K read 0), as fetch0 for x (N,K) row-major.
fn fetch_normed(u: u32, k: u32, row0: u32, N: u32, K: u32, keep: bool) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (k >= K || u >= N) { return v; }
  let n = min(4u, N - u);
  let gk = in2[k];
  v.x = normed(u, k, row0, K, gk, keep);
  if (n > 1u) { v.y = normed(u + 1u, k, row0, K, gk, keep); }
  if (n > 2u) { v.z = normed(u + 2u, k, row0, K, gk, keep); }
  if (n > 3u) { v.w = normed(u + 3u, k, row0, K, gk, keep); }
  return v;
}

// load_slice for the rmsnorm entries: A = rmsnorm(x) rows (in0, normed on the fly), B = w (in1).
fn load_slice_normed(A: Operand, B: Operand, row0: u32, col0: u32, k0: u32, N: u32, K: u32, keep: bool,
                     tid: u32) -> Staged {
  let n = invocations();
  var s: Staged;
  if (tid < TK * TM / 4u) {
    let e = load_slot(A, tid, TM); s.a0 = fetch_normed(row0 + e.x * 4u, k0 + e.y, row0, N, K, keep);
  }
  if (tid + n < TK * TM / 4u) {
    let e = load_slot(A, tid + n, TM); s.a1 = fetch_normed(row0 + e.x * 4u, k0 + e.y, row0, N, K, keep);
  }
  if (tid < TK * TN / 4u) { let e = load_slot(B, tid, TN); s.b0 = fetch1(B, col0 + e.x * 4u, k0 + e.y, K); }
  if (tid + n < TK * TN / 4u) { let e = load_slot(B, tid + n, TN); s.b1 = fetch1(B, col0 + e.x * 4u, k0 + e.y, K); }
  return s;
}

fn normed_forward(kind: u32, wid: vec3<u32>, lid: vec3<u32>) {
  let N = p6.N;
  let K = p6.K;
  let M = p6.M;
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  let tid = local_index(lid);
  let keep = wid.x == 0u;
  tile_rstd(row0, N, K, p6.eps, tid, keep);
  let A = operand(K, 1u, N);
  let B = operand(1u, M, M);
  // the software-pipelined k loop of product()
  let slices = (K + TK - 1u) / TK;
  var s = load_slice_normed(A, B, row0, col0, 0u, N, K, keep, tid);
  store_slice(s, 0u, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) { s = load_slice_normed(A, B, row0, col0, (t + 1u) * TK, N, K, keep, tid); }
    multiply(t & 1u, lid.x, lid.y);
    if (more) { store_slice(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
  store_out3(kind, row0, col0, N, M, false, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI)
fn matmul_forward_rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward(EPI_PLAIN, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI)
fn matmul_forward_rmsnorm_relu(@builtin(workgroup_id) wid: vec3<u32>,
                               @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward(EPI_RELU, wid, lid);
}

// --- the bias in the epilogue: y = x @ w + b, gelu(x @ w + b), res + (x @ w + b) (GPT-2's linear layers) ---
@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, p4.K, lid);
  store_bias_out3(EPI_PLAIN, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_bias_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, p4.K, lid);
  store_bias_out3(EPI_GELU, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_bias_residual(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product(Sources(0u, 1u), operand(p5.K, 1u, p5.N), operand(1u, p5.M, p5.M), row0, col0, p5.K, lid);
  store_bias_out4(row0, col0, p5.N, p5.M, p5.accumulate != 0u, lid);
}
