// attention_blocks_backward.wgsl — the causal attention backward as small matrix products over 64 x 64
// blocks (FlashAttention-2's block structure, CUDA cores only), for GPUs: the same math, bindings and
// uniform as attention_rows_backward.wgsl, which it replaces where gpu/attention_ops.py picks "blocks".
//
// Math (numpy, per batch b and head h; q, k, v (T,D) are head h's columns of qkv; scale = 1/sqrt(D)):
//   S = q @ k.T * scale, S[t, s > t] = -inf;  P = exp(S - lse[:, None])    (lse from the forward)
//   delta = (dy * y).sum(axis=1);  dS = P * (dy @ v.T - delta[:, None])
//   dq = dS @ k * scale;  dk = dS.T @ q * scale;  dv = P.T @ dy
// Shapes (f32, row-major): qkv, dqkv (B,T,3C) with columns [q | k | v] and head h at h*D:(h+1)*D
//   inside each; y, dy (B,T,C); lse (B,H,T). D = C / H, a multiple of 4, at most 64 (narrower heads
//   are padded with zero columns to 64: correct, but the work of D = 64).
//
// Why blocks: attention_rows_backward gives each invocation a whole row (3 x D/4 vec4 of registers at
// D = 64) and reads every key from workgroup memory once per multiply-add vec4: the driver cannot keep
// loads ahead of their use with its registers full, so the kernel waits on workgroup memory (on an
// H200: 0.29 ms per layer at `large`, ~5 TFLOP/s). Here a workgroup of 256 invocations (16 x 16) owns
// 64 query rows (dq kind) or 64 keys (dk/dv kind) and walks the other side's 64-row blocks; each
// invocation holds 4 x 4 outputs of every 64 x 64 product it takes part in, so one vec4 load from
// workgroup memory feeds 4 vec4 multiply-adds (as in matmul_tiles.wgsl), and its registers stay few.
//
// One workgroup, per block pair (its 64 rows r and the other side's 64 rows c, both of (b, h)):
//   1. scores: S and dP (64 x 64, 4 x 4 per invocation) over D in chunks of DC = 8 columns: q*scale,
//      dy, k, v of both blocks are staged TRANSPOSED in `chunk` ([column][row / 4] vec4), so an
//      invocation reads 4 rows of one side and 4 of the other as two vec4.
//   2. P = exp(S - lse) (0 where masked: key > query or past T), dS = P * (dP - delta); written to
//      workgroup memory as [row][column / 4] vec4 (rows on the side the next product sums over).
//   3. products: dq kind: dq (64 x D) += dS (64 x 64 keys) @ k, k's rows staged 32 at a time;
//      dk/dv kind: dv (64 keys x D) += P.T @ dy, dk += dS.T @ (q * scale), q and dy staged 16 rows at
//      a time. Accumulators: 4 rows x one vec4 of columns per invocation (column group tx < D/4).
// The dq kind walks key blocks 0 .. its own (causal), the dk/dv kind query blocks from its own to
// the last; both compute delta with one function (row_delta, one sum order), so they agree on it.
//
// Bindings (group 0, uniform last): 0 dy (read), 1 qkv (read), 2 y (read), 3 lse (read),
//   4 dqkv (read_write), 5 params (AttentionParams {B, T, C, H})
// Overrides: D = 64 head width (a multiple of 4, at most 64). Block size, chunks and the workgroup
//   are constants: 64-row blocks, 256 invocations.
// Grid: (2 * ceil(T / 64), H, B): x < ceil(T / 64) a dq workgroup (the last query block first, the
//   one with the most keys), else a dk/dv one (key block 0 first, the one with the most queries).
// Workgroup memory: 16 + 16 + 8 KiB + 512 B = 40.5 KiB: above WebGPU's default 16 KiB, so only for
//   adapters whose limit allows it (attention_ops asks the executor's max_workgroup_bytes).
// Entry point: attention_blocks_backward

override D: u32 = 64u;
override D4: u32 = D / 4u;  // derived: vec4 columns of a head row (callers never set it)
const BR: u32 = 64u;        // rows per block (query rows or keys)
const DC: u32 = 8u;         // head columns per score-phase chunk
const NT: u32 = 256u;       // invocations per workgroup: 16 x 16
const CHUNK4: u32 = 512u;   // vec4 slots of `chunk`: 4 tensors x DC columns x BR/4 (= 2 x 8 x 32 rows)

struct AttentionParams {
  B: u32,
  T: u32,
  C: u32,
  H: u32,
};

@group(0) @binding(0) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> y_in: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> lse_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> dqkv: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> params: AttentionParams;

var<workgroup> blk_a: array<vec4<f32>, 1024>;  // [row][column / 4]: dq kind: dS [query][key/4]; dk/dv: P [key][query/4]
var<workgroup> blk_b: array<vec4<f32>, 1024>;  // dk/dv kind: dS [key][query/4]
var<workgroup> chunk: array<vec4<f32>, CHUNK4>; // staging (see the header): scores, then product rows
var<workgroup> stat: array<vec2<f32>, BR>;     // (lse, delta) of the current query block's rows

// Index of vec4 column `col4` of row (b, t) in a (B,T,width4*4) tensor.
fn row_vec4(b: u32, t: u32, T: u32, width4: u32, col4: u32) -> u32 {
  return (b * T + t) * width4 + col4;
}

// delta[t] = sum(dy[t] * y[t]) over head h's D columns (first vec4 column col0 of the (B,T,C) rows).
fn row_delta(b: u32, t: u32, T: u32, C4: u32, col0: u32) -> f32 {
  var acc = vec4<f32>(0.0);
  for (var i = 0u; i < D4; i++) {
    let at = row_vec4(b, t, T, C4, col0 + i);
    acc += dy[at] * y_in[at];
  }
  return dot(acc, vec4<f32>(1.0));
}

// stat[i] = (lse, delta) of query row r0 + i (zeros past T), by the first 64 invocations.
fn load_stats(b: u32, h: u32, r0: u32, tid: u32) {
  let T = params.T;
  if (tid < BR) {
    let t = r0 + tid;
    var st = vec2<f32>(0.0);
    if (t < T) { st = vec2<f32>(lse_in[(b * params.H + h) * T + t], row_delta(b, t, T, params.C / 4u, h * D4)); }
    stat[tid] = st;
  }
}

// One head column block of a row of qkv (part 0 = q * scale, 1 = k, 2 = v) or of dy (part 3), zeros
// past T or past D.
fn head_vec4(b: u32, h: u32, t: u32, c4: u32, part: u32) -> vec4<f32> {
  let T = params.T;
  let C4 = params.C / 4u;
  if (t >= T || c4 >= D4) { return vec4<f32>(0.0); }
  if (part == 3u) { return dy[row_vec4(b, t, T, C4, h * D4 + c4)]; }
  let v = qkv[row_vec4(b, t, T, 3u * C4, part * C4 + h * D4 + c4)];
  if (part == 0u) { return v * inverseSqrt(f32(D)); }
  return v;
}

// Stage columns d0 .. d0 + 7 of q*scale, dy (rows r0 ..) and k, v (rows c0 ..) transposed:
// chunk[tensor * 128 + d * 16 + row / 4][row % 4], tensors 0 q, 1 dy, 2 k, 3 v.
fn stage_columns(b: u32, h: u32, r0: u32, c0: u32, d0: u32, tid: u32) {
  for (var e = tid; e < 4u * BR * (DC / 4u); e += NT) {
    let tensor = e / (BR * (DC / 4u));
    let within = e % (BR * (DC / 4u));
    let row = within / (DC / 4u);
    let half = within % (DC / 4u);
    let part = select(select(1u, 2u, tensor == 3u), select(0u, 3u, tensor == 1u), tensor < 2u);
    let base = select(c0, r0, tensor < 2u);
    let v = head_vec4(b, h, base + row, d0 / 4u + half, part);
    let slot = tensor * (DC * 16u) + (half * 4u) * 16u + row / 4u;
    let lane = row % 4u;
    chunk[slot][lane] = v.x;
    chunk[slot + 16u][lane] = v.y;
    chunk[slot + 32u][lane] = v.z;
    chunk[slot + 48u][lane] = v.w;
  }
}

// S and dP of one block pair, 4 x 4 per invocation: s[i][j], p[i][j] for A-side row ty*4 + i and
// B-side row tx*4 + j. The dq kind's A side is the queries (a = 0: q, dy against k, v), the dk/dv
// kind's the keys (a = 2: k, v against q, dy).
struct Scores {
  s0: vec4<f32>, s1: vec4<f32>, s2: vec4<f32>, s3: vec4<f32>,
  p0: vec4<f32>, p1: vec4<f32>, p2: vec4<f32>, p3: vec4<f32>,
};

fn scores(b: u32, h: u32, r0: u32, c0: u32, a: u32, tx: u32, ty: u32, tid: u32) -> Scores {
  var o: Scores;
  let ao = a * (DC * 16u);          // first of the A side's two tensors in chunk
  let bo = (2u - a) * (DC * 16u);   // the B side's
  for (var d0 = 0u; d0 < D4 * 4u; d0 += DC) {
    workgroupBarrier();  // the previous users of chunk are done
    stage_columns(b, h, r0, c0, d0, tid);
    workgroupBarrier();
    for (var d = 0u; d < DC; d++) {
      let x1 = chunk[ao + d * 16u + ty];
      let x2 = chunk[ao + DC * 16u + d * 16u + ty];
      let y1 = chunk[bo + d * 16u + tx];
      let y2 = chunk[bo + DC * 16u + d * 16u + tx];
      o.s0 = fma(vec4<f32>(x1.x), y1, o.s0); o.p0 = fma(vec4<f32>(x2.x), y2, o.p0);
      o.s1 = fma(vec4<f32>(x1.y), y1, o.s1); o.p1 = fma(vec4<f32>(x2.y), y2, o.p1);
      o.s2 = fma(vec4<f32>(x1.z), y1, o.s2); o.p2 = fma(vec4<f32>(x2.z), y2, o.p2);
      o.s3 = fma(vec4<f32>(x1.w), y1, o.s3); o.p3 = fma(vec4<f32>(x2.w), y2, o.p3);
    }
  }
  return o;
}

// P and dS of A-side row i (0..3) against the invocation's 4 B-side rows, from its S and dP rows:
// query/key positions decide the mask, stat (of the query) the exponent and delta.
fn probabilities(s: vec4<f32>, dp: vec4<f32>, query: vec4<u32>, key: vec4<u32>, st_l: vec4<f32>,
                 st_d: vec4<f32>) -> array<vec4<f32>, 2> {
  let seen = (key <= query) & (query < vec4<u32>(params.T));
  let p = select(vec4<f32>(0.0), exp(s - st_l), seen);
  return array<vec4<f32>, 2>(p, p * (dp - st_d));
}

// dq workgroup: query rows r0 .. r0 + 63 of (b, h).
fn backward_dq(blk: u32, h: u32, b: u32, tid: u32) {
  let T = params.T;
  let W4 = 3u * (params.C / 4u);
  let tx = tid % 16u;
  let ty = tid / 16u;
  let r0 = blk * BR;
  load_stats(b, h, r0, tid);
  var dq0 = vec4<f32>(0.0); var dq1 = vec4<f32>(0.0); var dq2 = vec4<f32>(0.0); var dq3 = vec4<f32>(0.0);
  let rows = vec4<u32>(r0 + ty * 4u) + vec4<u32>(0u, 1u, 2u, 3u);  // my 4 query rows (A side)
  for (var kb = 0u; kb <= blk; kb++) {
    let c0 = kb * BR;
    let o = scores(b, h, r0, c0, 0u, tx, ty, tid);  // S[row ty*4+i][key tx*4+j]
    let keys = vec4<u32>(c0 + tx * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    // dS of my row i against my 4 keys, stored as it comes: blk_a[row][key / 4]
    let st0 = stat[ty * 4u]; let st1 = stat[ty * 4u + 1u]; let st2 = stat[ty * 4u + 2u]; let st3 = stat[ty * 4u + 3u];
    blk_a[(ty * 4u) * 16u + tx] = probabilities(o.s0, o.p0, vec4<u32>(rows.x), keys, vec4<f32>(st0.x), vec4<f32>(st0.y))[1];
    blk_a[(ty * 4u + 1u) * 16u + tx] = probabilities(o.s1, o.p1, vec4<u32>(rows.y), keys, vec4<f32>(st1.x), vec4<f32>(st1.y))[1];
    blk_a[(ty * 4u + 2u) * 16u + tx] = probabilities(o.s2, o.p2, vec4<u32>(rows.z), keys, vec4<f32>(st2.x), vec4<f32>(st2.y))[1];
    blk_a[(ty * 4u + 3u) * 16u + tx] = probabilities(o.s3, o.p3, vec4<u32>(rows.w), keys, vec4<f32>(st3.x), vec4<f32>(st3.y))[1];
    // dq += dS @ k over the block's 64 keys, k rows staged 32 at a time as chunk[key * 16 + c4]; per
    // 4 keys: my 4 rows' dS (4 vec4, broadcast within a row group) and the 4 k rows' column group
    for (var kc = 0u; kc < BR; kc += 32u) {
      workgroupBarrier();  // dS is written; the previous users of chunk are done
      for (var e = tid; e < 32u * 16u; e += NT) {
        chunk[e] = head_vec4(b, h, c0 + kc + e / 16u, e % 16u, 1u);
      }
      workgroupBarrier();
      for (var c4 = 0u; c4 < 8u; c4++) {
        let a0 = blk_a[(ty * 4u) * 16u + kc / 4u + c4];
        let a1 = blk_a[(ty * 4u + 1u) * 16u + kc / 4u + c4];
        let a2 = blk_a[(ty * 4u + 2u) * 16u + kc / 4u + c4];
        let a3 = blk_a[(ty * 4u + 3u) * 16u + kc / 4u + c4];
        for (var cc = 0u; cc < 4u; cc++) {
          let kv = chunk[(c4 * 4u + cc) * 16u + tx];
          dq0 = fma(vec4<f32>(a0[cc]), kv, dq0);
          dq1 = fma(vec4<f32>(a1[cc]), kv, dq1);
          dq2 = fma(vec4<f32>(a2[cc]), kv, dq2);
          dq3 = fma(vec4<f32>(a3[cc]), kv, dq3);
        }
      }
    }
  }
  if (tx >= D4) { return; }
  let scale = inverseSqrt(f32(D));
  let col = h * D4 + tx;  // q's columns come first in a qkv row
  if (rows.x < T) { dqkv[row_vec4(b, rows.x, T, W4, col)] = dq0 * scale; }
  if (rows.y < T) { dqkv[row_vec4(b, rows.y, T, W4, col)] = dq1 * scale; }
  if (rows.z < T) { dqkv[row_vec4(b, rows.z, T, W4, col)] = dq2 * scale; }
  if (rows.w < T) { dqkv[row_vec4(b, rows.w, T, W4, col)] = dq3 * scale; }
}

// dk/dv workgroup: keys c0 .. c0 + 63 of (b, h).
fn backward_dkv(blk: u32, h: u32, b: u32, tid: u32) {
  let T = params.T;
  let C4 = params.C / 4u;
  let W4 = 3u * C4;
  let tx = tid % 16u;
  let ty = tid / 16u;
  let c0 = blk * BR;
  var dk0 = vec4<f32>(0.0); var dk1 = vec4<f32>(0.0); var dk2 = vec4<f32>(0.0); var dk3 = vec4<f32>(0.0);
  var dv0 = vec4<f32>(0.0); var dv1 = vec4<f32>(0.0); var dv2 = vec4<f32>(0.0); var dv3 = vec4<f32>(0.0);
  let keys = vec4<u32>(c0 + ty * 4u) + vec4<u32>(0u, 1u, 2u, 3u);  // my 4 keys (A side)
  for (var r0 = c0; r0 < T; r0 += BR) {
    workgroupBarrier();  // the previous block's reads of stat are done
    load_stats(b, h, r0, tid);
    let o = scores(b, h, r0, c0, 2u, tx, ty, tid);  // S[key ty*4+i][query tx*4+j]
    let queries = vec4<u32>(r0 + tx * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let sa = stat[tx * 4u]; let sb = stat[tx * 4u + 1u]; let sc = stat[tx * 4u + 2u]; let sd = stat[tx * 4u + 3u];
    let st_l = vec4<f32>(sa.x, sb.x, sc.x, sd.x);
    let st_d = vec4<f32>(sa.y, sb.y, sc.y, sd.y);
    // P and dS of my key i against my 4 queries, stored as they come: blk_a / blk_b[key][query / 4]
    let e0 = probabilities(o.s0, o.p0, queries, vec4<u32>(keys.x), st_l, st_d);
    blk_a[(ty * 4u) * 16u + tx] = e0[0]; blk_b[(ty * 4u) * 16u + tx] = e0[1];
    let e1 = probabilities(o.s1, o.p1, queries, vec4<u32>(keys.y), st_l, st_d);
    blk_a[(ty * 4u + 1u) * 16u + tx] = e1[0]; blk_b[(ty * 4u + 1u) * 16u + tx] = e1[1];
    let e2 = probabilities(o.s2, o.p2, queries, vec4<u32>(keys.z), st_l, st_d);
    blk_a[(ty * 4u + 2u) * 16u + tx] = e2[0]; blk_b[(ty * 4u + 2u) * 16u + tx] = e2[1];
    let e3 = probabilities(o.s3, o.p3, queries, vec4<u32>(keys.w), st_l, st_d);
    blk_a[(ty * 4u + 3u) * 16u + tx] = e3[0]; blk_b[(ty * 4u + 3u) * 16u + tx] = e3[1];
    // dv += P.T @ dy, dk += dS.T @ (q * scale) over the block's 64 queries, staged 16 rows at a time:
    // chunk[query * 16 + c4] = q * scale, chunk[256 + query * 16 + c4] = dy; per 4 queries: my 4 keys'
    // P and dS (8 vec4, broadcast within a key group), then each query's q and dy column group
    for (var rc = 0u; rc < BR; rc += 16u) {
      workgroupBarrier();
      for (var e = tid; e < 2u * 16u * 16u; e += NT) {
        let w = e % 256u;
        chunk[e] = head_vec4(b, h, r0 + rc + w / 16u, w % 16u, select(0u, 3u, e >= 256u));
      }
      workgroupBarrier();
      for (var r4 = 0u; r4 < 4u; r4++) {
        let at = rc / 4u + r4;
        let p0 = blk_a[(ty * 4u) * 16u + at]; let g0 = blk_b[(ty * 4u) * 16u + at];
        let p1 = blk_a[(ty * 4u + 1u) * 16u + at]; let g1 = blk_b[(ty * 4u + 1u) * 16u + at];
        let p2 = blk_a[(ty * 4u + 2u) * 16u + at]; let g2 = blk_b[(ty * 4u + 2u) * 16u + at];
        let p3 = blk_a[(ty * 4u + 3u) * 16u + at]; let g3 = blk_b[(ty * 4u + 3u) * 16u + at];
        for (var rr = 0u; rr < 4u; rr++) {
          let qv = chunk[(r4 * 4u + rr) * 16u + tx];
          let gv = chunk[256u + (r4 * 4u + rr) * 16u + tx];
          dv0 = fma(vec4<f32>(p0[rr]), gv, dv0); dk0 = fma(vec4<f32>(g0[rr]), qv, dk0);
          dv1 = fma(vec4<f32>(p1[rr]), gv, dv1); dk1 = fma(vec4<f32>(g1[rr]), qv, dk1);
          dv2 = fma(vec4<f32>(p2[rr]), gv, dv2); dk2 = fma(vec4<f32>(g2[rr]), qv, dk2);
          dv3 = fma(vec4<f32>(p3[rr]), gv, dv3); dk3 = fma(vec4<f32>(g3[rr]), qv, dk3);
        }
      }
    }
  }
  if (tx >= D4) { return; }
  let kcol = C4 + h * D4 + tx;
  let vcol = 2u * C4 + h * D4 + tx;
  if (keys.x < T) { dqkv[row_vec4(b, keys.x, T, W4, kcol)] = dk0; dqkv[row_vec4(b, keys.x, T, W4, vcol)] = dv0; }
  if (keys.y < T) { dqkv[row_vec4(b, keys.y, T, W4, kcol)] = dk1; dqkv[row_vec4(b, keys.y, T, W4, vcol)] = dv1; }
  if (keys.z < T) { dqkv[row_vec4(b, keys.z, T, W4, kcol)] = dk2; dqkv[row_vec4(b, keys.z, T, W4, vcol)] = dv2; }
  if (keys.w < T) { dqkv[row_vec4(b, keys.w, T, W4, kcol)] = dk3; dqkv[row_vec4(b, keys.w, T, W4, vcol)] = dv3; }
}

// dq and dk, dv in ONE dispatch: workgroups x < ceil(T / 64) do dq (the last query block first), the
// rest dk, dv (key block 0, which sees every query, first).
@compute @workgroup_size(256)
fn attention_blocks_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let blocks = (params.T + BR - 1u) / BR;
  if (wid.x < blocks) {
    backward_dq(blocks - 1u - wid.x, wid.y, wid.z, tid);
  } else {
    backward_dkv(wid.x - blocks, wid.y, wid.z, tid);
  }
}
