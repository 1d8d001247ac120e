// matmul_vec4.wgsl — matmul.wgsl's entries with one 16-byte load per global read (the "_v4" twins).
// Same math, bindings, uniform, overrides and grids as matmul.wgsl's entries of the same name without
// "_v4" (see its header); the tile machinery is shared through the include below.

// #include "matmul_tiles.wgsl"
// #include "matmul_stores.wgsl"

// === vec4-load twins: matmul.wgsl's entries with one 16-byte load per global read ==============
// matmul_forward_v4, _backward_dx_v4, _backward_dw_v4, _forward_residual_v4, _backward_v4,
// _backward_relu_v4, _backward_split_v4, _backward_relu_split_v4, _forward_rmsnorm_v4,
// _forward_rmsnorm_relu_v4, _forward_bias_v4, _forward_bias_gelu_v4, _forward_bias_residual_v4:
// same bindings, uniform, grid and overrides as their scalar entry; the operands are read through
// in0v..in2v (the bias entries' b and res stay f32: in2, in3). Precondition (checked by
// registry.matmul_entry, the only chooser): K % 4 == 0 and M % 4 == 0. Those are the contiguous
// dimensions of every operand read (x (N,K), w (K,M), dy and res (N,M), g (K,)); N may be anything
// (rows are never contiguous). Then a vec4 along an operand's contiguous dimension starts at a
// multiple of 4 elements and is wholly inside or wholly outside the operand at every edge.
// (matmul_backward_dx_v4 reads only dy (N,M) and w (K,M), along M: it needs M % 4 == 0 alone, which
// registry.tied_head_entry uses for GPT-2's head, K = V = 50,257.)
// The tiles receive the same values at the same places as the scalar entries', multiply_tiles is
// shared and each accumulator sums k in the same order, so every output is BIT-IDENTICAL to the
// scalar entry's (tests/test_kernels_matmul.py checks it).
// Load mapping, per operand (Operand.k_fast):
//   contiguous along u (k_stride != 1: w in the forwards, x.T and dy in dw): load_slot's mapping,
//     the vec4 (u .. u+3 at one k) goes straight into the tile;
//   contiguous along k (x in the forwards, dy and w.T in dx): a vec4 is k .. k+3 of ONE u, so the
//     e-th load of a slice is (u = e / (TK/4), k = 4 (e % (TK/4))) (neighbouring invocations: the
//     TK/4 vec4 of one row, then the next row), and its store into the k-major tile is 4 scalar
//     stores (the row padding keeps them off one bank: rows k and k+4 are 16 banks apart).

// (u, k) of the first element of the e-th of the tile's TK x T/4 vec4 loads (t = TM or TN).
fn load_origin_v4(op: Operand, e: u32, t: u32) -> vec2<u32> {
  if (op.k_fast) { return vec2<u32>(e / (TK / 4u), (e % (TK / 4u)) * 4u); }
  return vec2<u32>((e % (t / 4u)) * 4u, e / (t / 4u));
}

// The vec4 at operand element (u, k) along its contiguous dimension, zeros past u_count or I.
fn fetch0v(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (k >= I || u >= op.u_count) { return vec4<f32>(0.0); }
  return in0v[(u * op.u_stride + k * op.k_stride) / 4u];
}

fn fetch1v(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (k >= I || u >= op.u_count) { return vec4<f32>(0.0); }
  return in1v[(u * op.u_stride + k * op.k_stride) / 4u];
}

fn fetch2v(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (k >= I || u >= op.u_count) { return vec4<f32>(0.0); }
  return in2v[(u * op.u_stride + k * op.k_stride) / 4u];
}

fn fetchv(src: u32, op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (src == 0u) { return fetch0v(op, u, k, I); }
  return fetch1v(op, u, k, I);
}

fn fetchv_with_in2(src: u32, op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (src == 2u) { return fetch2v(op, u, k, I); }
  return fetchv(src, op, u, k, I);
}

// load_slice / load_slice_in2 with vec4 loads (Staged holds the same loads, mapped by load_origin_v4).
fn load_slice_v4(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, k0: u32, I: u32, tid: u32) -> Staged {
  let n = invocations();
  var s: Staged;
  if (tid < TK * TM / 4u) {
    let o = load_origin_v4(A, tid, TM); s.a0 = fetchv(src.a, A, row0 + o.x, k0 + o.y, I);
  }
  if (tid + n < TK * TM / 4u) {
    let o = load_origin_v4(A, tid + n, TM); s.a1 = fetchv(src.a, A, row0 + o.x, k0 + o.y, I);
  }
  if (tid < TK * TN / 4u) {
    let o = load_origin_v4(B, tid, TN); s.b0 = fetchv(src.b, B, col0 + o.x, k0 + o.y, I);
  }
  if (tid + n < TK * TN / 4u) {
    let o = load_origin_v4(B, tid + n, TN); s.b1 = fetchv(src.b, B, col0 + o.x, k0 + o.y, I);
  }
  return s;
}

fn load_slice_in2_v4(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, k0: u32, I: u32, tid: u32) -> Staged {
  let n = invocations();
  var s: Staged;
  if (tid < TK * TM / 4u) {
    let o = load_origin_v4(A, tid, TM); s.a0 = fetchv_with_in2(src.a, A, row0 + o.x, k0 + o.y, I);
  }
  if (tid + n < TK * TM / 4u) {
    let o = load_origin_v4(A, tid + n, TM); s.a1 = fetchv_with_in2(src.a, A, row0 + o.x, k0 + o.y, I);
  }
  if (tid < TK * TN / 4u) {
    let o = load_origin_v4(B, tid, TN); s.b0 = fetchv_with_in2(src.b, B, col0 + o.x, k0 + o.y, I);
  }
  if (tid + n < TK * TN / 4u) {
    let o = load_origin_v4(B, tid + n, TN); s.b1 = fetchv_with_in2(src.b, B, col0 + o.x, k0 + o.y, I);
  }
  return s;
}

// One loaded vec4 into a_tile / b_tile at tile-relative origin o = (u, k) from slot `base`: along u
// it is one vec4 slot; along k (k_fast) it is element u % 4 of slot u / 4 in rows k .. k+3.
fn put_a(v: vec4<f32>, base: u32, o: vec2<u32>, k_fast: bool) {
  let i = base + o.y * A_ROW4 + o.x / 4u;
  if (!k_fast) { a_tile[i] = v; return; }
  let c = o.x % 4u;
  a_tile[i][c] = v.x;
  a_tile[i + A_ROW4][c] = v.y;
  a_tile[i + 2u * A_ROW4][c] = v.z;
  a_tile[i + 3u * A_ROW4][c] = v.w;
}

fn put_b(v: vec4<f32>, base: u32, o: vec2<u32>, k_fast: bool) {
  let i = base + o.y * B_ROW4 + o.x / 4u;
  if (!k_fast) { b_tile[i] = v; return; }
  let c = o.x % 4u;
  b_tile[i][c] = v.x;
  b_tile[i + B_ROW4][c] = v.y;
  b_tile[i + 2u * B_ROW4][c] = v.z;
  b_tile[i + 3u * B_ROW4][c] = v.w;
}

// store_slice for loads mapped by load_origin_v4.
fn store_slice_v4(s: Staged, buf: u32, A: Operand, B: Operand, tid: u32) {
  let n = invocations();
  let a_base = buf * TK * A_ROW4;
  let b_base = buf * TK * B_ROW4;
  if (tid < TK * TM / 4u) { put_a(s.a0, a_base, load_origin_v4(A, tid, TM), A.k_fast); }
  if (tid + n < TK * TM / 4u) { put_a(s.a1, a_base, load_origin_v4(A, tid + n, TM), A.k_fast); }
  if (tid < TK * TN / 4u) { put_b(s.b0, b_base, load_origin_v4(B, tid, TN), B.k_fast); }
  if (tid + n < TK * TN / 4u) { put_b(s.b1, b_base, load_origin_v4(B, tid + n, TN), B.k_fast); }
}

// product / product_in2 with vec4 loads (the same software pipeline).
fn product_v4(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, I: u32, lid: vec3<u32>) {
  let tid = local_index(lid);
  let g = lid.z;
  let rounds = ((I + TK - 1u) / TK + KGROUPS - 1u) / KGROUPS;
  var s = load_slice_v4(src, A, B, row0, col0, g * TK, I, tid);
  store_slice_v4(s, g, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < rounds; t++) {
    let more = t + 1u < rounds;
    if (more) { s = load_slice_v4(src, A, B, row0, col0, ((t + 1u) * KGROUPS + g) * TK, I, tid); }
    multiply((t & 1u) * KGROUPS + g, lid.x, lid.y);
    if (more) { store_slice_v4(s, ((t + 1u) & 1u) * KGROUPS + g, A, B, tid); }
    workgroupBarrier();
  }
  reduce_groups(tid, g);
}

fn product_in2_v4(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, k_begin: u32, I: u32,
                  lid: vec3<u32>) {
  let tid = local_index(lid);
  let g = lid.z;
  let rounds = ((I - k_begin + TK - 1u) / TK + KGROUPS - 1u) / KGROUPS;
  var s = load_slice_in2_v4(src, A, B, row0, col0, k_begin + g * TK, I, tid);
  store_slice_v4(s, g, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < rounds; t++) {
    let more = t + 1u < rounds;
    if (more) { s = load_slice_in2_v4(src, A, B, row0, col0, k_begin + ((t + 1u) * KGROUPS + g) * TK, I, tid); }
    multiply((t & 1u) * KGROUPS + g, lid.x, lid.y);
    if (more) { store_slice_v4(s, ((t + 1u) & 1u) * KGROUPS + g, A, B, tid); }
    workgroupBarrier();
  }
  reduce_groups(tid, g);
}

// epilogue_in2 / store_out3 reading res and x through in2v / in0v (element i of a vec4 array).
fn epilogue_in2_v4(kind: u32, i: u32, v: f32) -> f32 {
  if (kind == EPI_RESIDUAL) { return v + in2v[i / 4u][i % 4u]; }
  if (kind == EPI_RELU_MASK) { return select(0.0, v, in0v[i / 4u][i % 4u] > 0.0); }
  return epilogue(kind, i, v);
}

fn store_out3_v4(kind: u32, row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = o.x * Q + c;
        let y = epilogue_in2_v4(kind, i, v[e]);
        if (acc) { out3[i] = out3[i] + y; } else { out3[i] = y; }
      }
    }
  }
}

fn three_buffer_v4(src: Sources, kind: u32, A: Operand, B: Operand, R: u32, I: u32, Q: u32,
                   wid: vec3<u32>, lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_v4(src, A, B, row0, col0, I, lid);
  store_out2(kind, row0, col0, R, Q, p3.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  three_buffer_v4(Sources(0u, 1u), EPI_PLAIN, operand(p3.K, 1u, p3.N), operand(1u, p3.M, p3.M),
                  p3.N, p3.K, p3.M, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_dx_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  three_buffer_v4(Sources(0u, 1u), EPI_PLAIN, operand(p3.M, 1u, p3.N), operand(p3.M, 1u, p3.K),
                  p3.N, p3.M, p3.K, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_dw_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  three_buffer_v4(Sources(0u, 1u), EPI_PLAIN, operand(1u, p3.K, p3.K), operand(1u, p3.M, p3.M),
                  p3.K, p3.N, p3.M, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_residual_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_in2_v4(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, 0u, p4.K, lid);
  store_out3_v4(EPI_RESIDUAL, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

fn backward_both_v4(dx_kind: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
  let N = p5.N;
  let K = p5.K;
  let M = p5.M;
  let tile = backward_tile(wid.y * nwg.x + wid.x, N, K, M);
  let acc = p5.accumulate != 0u;
  if (tile.x == 0u) {  // dx (N,K) = dy @ w.T
    product_in2_v4(Sources(2u, 1u), operand(M, 1u, N), operand(M, 1u, K), tile.y, tile.z, 0u, M, lid);
    store_out3_v4(dx_kind, tile.y, tile.z, N, K, acc, lid);
  } else if (tile.x == 1u) {  // dw (K,M) = x.T @ dy
    product_in2_v4(Sources(0u, 2u), operand(1u, K, K), operand(1u, M, M), tile.y, tile.z, 0u, N, lid);
    store_out4(tile.y, tile.z, K, M, acc, lid);
  }
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both_v4(EPI_PLAIN, wid, nwg, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_relu_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both_v4(EPI_RELU_MASK, wid, nwg, lid);
}

// matmul.wgsl's backward_split with vec4 loads (the split entries' twins).
fn backward_split_v4(dx_kind: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
  let N = p6s.N;
  let K = p6s.K;
  let M = p6s.M;
  let acc = p6s.accumulate != 0u;
  let flat = wid.y * nwg.x + wid.x;
  let dx_workgroups = DX_SPLIT * ((K + TN - 1u) / TN) * ((N + TM - 1u) / TM);
  if (flat < dx_workgroups) {  // dx (N,K) = dy @ w.T, part s of the sum over M
    let e = split_dx_tile(flat, N, K, M);
    product_in2_v4(Sources(2u, 1u), operand(M, 1u, N), operand(M, 1u, K), e.row0, e.col0, e.k_begin, e.k_end, lid);
    if (e.s == 0u) {
      store_out3_v4(dx_kind, e.row0, e.col0, N, K, acc, lid);
    } else {
      store_out3_part(e.row0, e.col0, N, K, e.s * N * K, acc, lid);
    }
    return;
  }
  let d = split_dw_tile(flat - dx_workgroups, N, K, M);
  if (d.s >= SPLIT) { return; }
  product_in2_v4(Sources(0u, 2u), operand(1u, K, K), operand(1u, M, M), d.row0, d.col0, d.k_begin, d.k_end, lid);
  if (d.s == 0u) {
    store_out4(d.row0, d.col0, K, M, acc, lid);
  } else {
    store_part(d.row0, d.col0, K, M, (d.s - 1u) * p6s.part_stride, acc, lid);
  }
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_split_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_split_v4(EPI_PLAIN, wid, nwg, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_backward_relu_split_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_split_v4(EPI_RELU_MASK, wid, nwg, lid);
}

// tile_rstd with vec4 loads of x: slot (row u, k .. k+3) sums the squares of its 4 k columns over
// k0 = 0, TK, 2 TK, ... (per element the same sums as tile_rstd's, in the same order) and leaves them
// where tile_rstd does, so rstd_from_slot_sums adds the same numbers.
fn tile_rstd_v4(row0: u32, N: u32, K: u32, eps: f32, tid: u32, keep: bool) {
  let threads = invocations();
  let A = operand(K, 1u, N);
  for (var e = tid; e < TK * TM / 4u; e += threads) {
    let o = load_origin_v4(A, e, TM);
    var ss = vec4<f32>(0.0);  // row row0 + o.x at k = o.y + j, o.y + j + TK, ... (component j)
    for (var k0 = 0u; k0 < K; k0 += TK) {
      let v = fetch0v(A, row0 + o.x, k0 + o.y, K);
      ss += v * v;
    }
    put_a(ss, 0u, o, true);
  }
  workgroupBarrier();
  rstd_from_slot_sums(row0, N, K, eps, tid, keep);
}

// xn (row u, k .. k+3) = x * rstd * g as normed() computes it per element, from one vec4 of x and one
// of g; `keep` also stores it into out4v. Zeros past N or K.
fn fetch_normed_v4(u: u32, k: u32, row0: u32, N: u32, K: u32, keep: bool) -> vec4<f32> {
  if (k >= K || u >= N) { return vec4<f32>(0.0); }
  let i = (u * K + k) / 4u;
  let v = in0v[i] * rstd_sh[u - row0] * in2v[k / 4u];
  if (keep) { out4v[i] = v; }
  return v;
}

fn load_slice_normed_v4(A: Operand, B: Operand, row0: u32, col0: u32, k0: u32, N: u32, K: u32, keep: bool,
                        tid: u32) -> Staged {
  let n = invocations();
  var s: Staged;
  if (tid < TK * TM / 4u) {
    let o = load_origin_v4(A, tid, TM); s.a0 = fetch_normed_v4(row0 + o.x, k0 + o.y, row0, N, K, keep);
  }
  if (tid + n < TK * TM / 4u) {
    let o = load_origin_v4(A, tid + n, TM); s.a1 = fetch_normed_v4(row0 + o.x, k0 + o.y, row0, N, K, keep);
  }
  if (tid < TK * TN / 4u) { let o = load_origin_v4(B, tid, TN); s.b0 = fetch1v(B, col0 + o.x, k0 + o.y, K); }
  if (tid + n < TK * TN / 4u) { let o = load_origin_v4(B, tid + n, TN); s.b1 = fetch1v(B, col0 + o.x, k0 + o.y, K); }
  return s;
}

fn normed_forward_v4(kind: u32, wid: vec3<u32>, lid: vec3<u32>) {
  let N = p6.N;
  let K = p6.K;
  let M = p6.M;
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  let tid = local_index(lid);
  let keep = wid.x == 0u;
  tile_rstd_v4(row0, N, K, p6.eps, tid, keep);
  let A = operand(K, 1u, N);
  let B = operand(1u, M, M);
  let slices = (K + TK - 1u) / TK;
  var s = load_slice_normed_v4(A, B, row0, col0, 0u, N, K, keep, tid);
  store_slice_v4(s, 0u, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) { s = load_slice_normed_v4(A, B, row0, col0, (t + 1u) * TK, N, K, keep, tid); }
    multiply(t & 1u, lid.x, lid.y);
    if (more) { store_slice_v4(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
  store_out3_v4(kind, row0, col0, N, M, false, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI)
fn matmul_forward_rmsnorm_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward_v4(EPI_PLAIN, wid, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI)
fn matmul_forward_rmsnorm_relu_v4(@builtin(workgroup_id) wid: vec3<u32>,
                                  @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward_v4(EPI_RELU, wid, lid);
}

// The bias entries' twins: x and w through in0v, in1v; b and res stay f32 arrays (store_bias_out3/4).
@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_bias_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_v4(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, p4.K, lid);
  store_bias_out3(EPI_PLAIN, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_bias_gelu_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_v4(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, p4.K, lid);
  store_bias_out3(EPI_GELU, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / RPI, TM / RPI, KGROUPS)
fn matmul_forward_bias_residual_v4(@builtin(workgroup_id) wid: vec3<u32>,
                                   @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_v4(Sources(0u, 1u), operand(p5.K, 1u, p5.N), operand(1u, p5.M, p5.M), row0, col0, p5.K, lid);
  store_bias_out4(row0, col0, p5.N, p5.M, p5.accumulate != 0u, lid);
}
