// matmul.wgsl — the linear layer y = x @ w, the products its backward needs, and fused variants.
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
// Overrides: TM, TN = output rows / columns per workgroup, each 32, 64 or 128 (default 64). Every
//   invocation owns an 8 x 8 block of outputs, so a workgroup has (TN/8) x (TM/8) invocations
//   (16 x 16 at 128 x 128). Large products want 128 x 128 (64 FMAs per 4 vec4 reads of workgroup
//   memory); small ones want small tiles so that enough workgroups run (registry.matmul_tiles picks).
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
// bindings). In a probe of this design on an H200 under Dawn (benchmarks/probes/gemm_vec4_probe.py)
// vec4 loads took 4096^3 from 0.50x to 0.61x PyTorch and 2048 x 512 x 2048 from ~0.34x to 0.69x; on
// llvmpipe (a CPU) the twins are as fast as the scalar entries within noise.
// The workgroup arrays are sized by override expressions (2 * TK * row, TM rows of rstd), not by
// the largest tile: Dawn zero-fills workgroup memory in every shader (unless its
// disable_workgroup_init feature is on), and SwiftShader compiles that fill at about 2 ms per vec4,
// so a 32 x 32 pipeline with 128 x 128 arrays took seconds to compile in the browser.

override TM: u32 = 64u;  // output rows per workgroup (8 per invocation in y)
override TN: u32 = 64u;  // output columns per workgroup (8 per invocation in x)
override TK: u32 = min(8u, min(TM, TN) / 8u);  // inner-dimension slice per step (8, or 4 for 32-wide tiles)
// (TK is a multiple of 4: a _v4 twin's vec4 of 4 k values never straddles two slices.)
// A_ROW4, B_ROW4: derived from TM, TN (overrides only because workgroup array sizes must be
// override expressions); callers never set them.
override A_ROW4: u32 = TM / 4u + 1u;  // vec4 slots per k row of a_tile: TM / 4, plus one of padding
override B_ROW4: u32 = TN / 4u + 1u;  // the same for b_tile

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

struct NormMatmulParams {
  N: u32,
  K: u32,
  M: u32,
  eps: f32,
};

@group(0) @binding(0) var<storage, read> in0: array<f32>;         // x | dy (backward_dx)
@group(0) @binding(1) var<storage, read> in1: array<f32>;         // w | dy (backward_dw)
@group(0) @binding(2) var<storage, read> in2: array<f32>;         // res (forward_residual) | dy (backward)
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;  // y | dx | dw (three-buffer entries)
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;  // y (forward_residual) | dx (backward)
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;  // dw (backward) | xn (rmsnorm)
@group(0) @binding(5) var<storage, read_write> out5: array<f32>;  // rstd (rmsnorm)
// The vec4-load twins (entries ending in _v4) bind the same buffers as vec4 arrays instead: an
// entry uses in0..in2 or in0v..in2v, never both (WGSL allows shared bindings across entry points).
@group(0) @binding(0) var<storage, read> in0v: array<vec4<f32>>;         // in0 for the _v4 entries
@group(0) @binding(1) var<storage, read> in1v: array<vec4<f32>>;         // in1 for the _v4 entries
@group(0) @binding(2) var<storage, read> in2v: array<vec4<f32>>;         // in2 for the _v4 entries
@group(0) @binding(4) var<storage, read_write> out4v: array<vec4<f32>>;  // xn (rmsnorm _v4 entries)
@group(0) @binding(3) var<uniform> p3: MatmulParams;
@group(0) @binding(4) var<uniform> p4: MatmulParams;
@group(0) @binding(5) var<uniform> p5: MatmulParams;
@group(0) @binding(6) var<uniform> p6: NormMatmulParams;

// Two buffers of TK x A_ROW4 (one being multiplied, one being filled), 2 x 8 x 33 vec4 at most:
// a_tile[buf * TK * A_ROW4 + k * A_ROW4 + r / 4] = A rows r..r+3 at k; b_tile the same for B's
// columns with B_ROW4.
var<workgroup> a_tile: array<vec4<f32>, 2u * TK * A_ROW4>;
var<workgroup> b_tile: array<vec4<f32>, 2u * TK * B_ROW4>;
var<workgroup> rstd_sh: array<f32, TM>;  // rmsnorm entries: rstd of the tile's TM rows

// The invocation's 8 x 8 outputs: rows ty*4 + i (c{i}) and TM/2 + ty*4 + i (c{i+4}), i = 0..3;
// columns tx*4 .. +3 (suffix a) and TN/2 + tx*4 .. +3 (suffix b).
var<private> c0a: vec4<f32>; var<private> c0b: vec4<f32>;
var<private> c1a: vec4<f32>; var<private> c1b: vec4<f32>;
var<private> c2a: vec4<f32>; var<private> c2b: vec4<f32>;
var<private> c3a: vec4<f32>; var<private> c3b: vec4<f32>;
var<private> c4a: vec4<f32>; var<private> c4b: vec4<f32>;
var<private> c5a: vec4<f32>; var<private> c5b: vec4<f32>;
var<private> c6a: vec4<f32>; var<private> c6b: vec4<f32>;
var<private> c7a: vec4<f32>; var<private> c7b: vec4<f32>;

// Where an operand element lives: element (u, k), u = output row (A) or column (B), at
// base + u * u_stride + k * k_stride. Row-major A (R,I): (I, 1); A stored (I,R): (1, R);
// row-major B (I,Q): (1, Q); B stored (Q,I): (I, 1).
struct Operand {
  u_stride: u32,
  k_stride: u32,
  u_count: u32,  // R or Q: u past it reads 0
  k_fast: bool,  // k_stride == 1: neighbouring invocations walk k (coalesced reads), else u
};

fn operand(u_stride: u32, k_stride: u32, u_count: u32) -> Operand {
  return Operand(u_stride, k_stride, u_count, k_stride == 1u);
}

// (u / 4, k) slot of the e-th of the tile's TK x (T/4) vec4 loads, in the order that makes
// neighbouring invocations read neighbouring addresses.
fn load_slot(op: Operand, e: u32, t: u32) -> vec2<u32> {
  if (op.k_fast) { return vec2<u32>(e / TK, e % TK); }
  return vec2<u32>(e % (t / 4u), e / (t / 4u));
}

// Element indexes of operand elements (u .. u+3, k) and how many of them are inside the operand.
fn valid_count(op: Operand, u: u32, k: u32, I: u32) -> u32 {
  if (k >= I || u >= op.u_count) { return 0u; }
  return min(4u, op.u_count - u);
}

fn fetch0(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  let n = valid_count(op, u, k, I);
  let i = u * op.u_stride + k * op.k_stride;
  var v = vec4<f32>(0.0);
  if (n > 0u) { v.x = in0[i]; }
  if (n > 1u) { v.y = in0[i + op.u_stride]; }
  if (n > 2u) { v.z = in0[i + 2u * op.u_stride]; }
  if (n > 3u) { v.w = in0[i + 3u * op.u_stride]; }
  return v;
}

fn fetch1(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  let n = valid_count(op, u, k, I);
  let i = u * op.u_stride + k * op.k_stride;
  var v = vec4<f32>(0.0);
  if (n > 0u) { v.x = in1[i]; }
  if (n > 1u) { v.y = in1[i + op.u_stride]; }
  if (n > 2u) { v.z = in1[i + 2u * op.u_stride]; }
  if (n > 3u) { v.w = in1[i + 3u * op.u_stride]; }
  return v;
}

fn fetch2(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  let n = valid_count(op, u, k, I);
  let i = u * op.u_stride + k * op.k_stride;
  var v = vec4<f32>(0.0);
  if (n > 0u) { v.x = in2[i]; }
  if (n > 1u) { v.y = in2[i + op.u_stride]; }
  if (n > 2u) { v.z = in2[i + 2u * op.u_stride]; }
  if (n > 3u) { v.w = in2[i + 3u * op.u_stride]; }
  return v;
}

// Which binding feeds A and B: 0, 1 or 2 (in0, in1, in2).
struct Sources {
  a: u32,
  b: u32,
};

fn fetch(src: u32, op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (src == 0u) { return fetch0(op, u, k, I); }
  return fetch1(op, u, k, I);
}

fn fetch_with_in2(src: u32, op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (src == 2u) { return fetch2(op, u, k, I); }
  return fetch(src, op, u, k, I);
}

// The invocation's share of one k-slice: at most two vec4 of A and two of B (TK <= min(TM, TN) / 8
// makes TK * TM / 4 <= 2 * invocations, and the same for B).
struct Staged {
  a0: vec4<f32>,
  a1: vec4<f32>,
  b0: vec4<f32>,
  b1: vec4<f32>,
};

fn invocations() -> u32 { return (TM / 8u) * (TN / 8u); }

// Global memory -> registers: this invocation's loads of the k-slice starting at k0. Two copies of
// the same code: an entry may only touch its own bindings, and in2 shares binding 2 with out2.
fn load_slice(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, k0: u32, I: u32, tid: u32) -> Staged {
  let n = invocations();
  var s: Staged;
  if (tid < TK * TM / 4u) { let e = load_slot(A, tid, TM); s.a0 = fetch(src.a, A, row0 + e.x * 4u, k0 + e.y, I); }
  if (tid + n < TK * TM / 4u) { let e = load_slot(A, tid + n, TM); s.a1 = fetch(src.a, A, row0 + e.x * 4u, k0 + e.y, I); }
  if (tid < TK * TN / 4u) { let e = load_slot(B, tid, TN); s.b0 = fetch(src.b, B, col0 + e.x * 4u, k0 + e.y, I); }
  if (tid + n < TK * TN / 4u) { let e = load_slot(B, tid + n, TN); s.b1 = fetch(src.b, B, col0 + e.x * 4u, k0 + e.y, I); }
  return s;
}

fn load_slice_in2(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, k0: u32, I: u32, tid: u32) -> Staged {
  let n = invocations();
  var s: Staged;
  if (tid < TK * TM / 4u) {
    let e = load_slot(A, tid, TM); s.a0 = fetch_with_in2(src.a, A, row0 + e.x * 4u, k0 + e.y, I);
  }
  if (tid + n < TK * TM / 4u) {
    let e = load_slot(A, tid + n, TM); s.a1 = fetch_with_in2(src.a, A, row0 + e.x * 4u, k0 + e.y, I);
  }
  if (tid < TK * TN / 4u) {
    let e = load_slot(B, tid, TN); s.b0 = fetch_with_in2(src.b, B, col0 + e.x * 4u, k0 + e.y, I);
  }
  if (tid + n < TK * TN / 4u) {
    let e = load_slot(B, tid + n, TN); s.b1 = fetch_with_in2(src.b, B, col0 + e.x * 4u, k0 + e.y, I);
  }
  return s;
}

// Registers -> workgroup buffer `buf` (0 or 1) of both tiles.
fn store_slice(s: Staged, buf: u32, A: Operand, B: Operand, tid: u32) {
  let n = invocations();
  let a_base = buf * TK * A_ROW4;
  let b_base = buf * TK * B_ROW4;
  if (tid < TK * TM / 4u) { let e = load_slot(A, tid, TM); a_tile[a_base + e.y * A_ROW4 + e.x] = s.a0; }
  if (tid + n < TK * TM / 4u) { let e = load_slot(A, tid + n, TM); a_tile[a_base + e.y * A_ROW4 + e.x] = s.a1; }
  if (tid < TK * TN / 4u) { let e = load_slot(B, tid, TN); b_tile[b_base + e.y * B_ROW4 + e.x] = s.b0; }
  if (tid + n < TK * TN / 4u) { let e = load_slot(B, tid + n, TN); b_tile[b_base + e.y * B_ROW4 + e.x] = s.b1; }
}

// c += A_tile @ B_tile (workgroup buffer `buf`) for this invocation's 8 x 8 outputs.
fn multiply_tiles(buf: u32, tx: u32, ty: u32) {
  let a_hi = TM / 8u;  // vec4 offset of the lower half of the rows
  let b_hi = TN / 8u;
  let a_base = buf * TK * A_ROW4;
  let b_base = buf * TK * B_ROW4;
  for (var k = 0u; k < TK; k++) {
    let a0 = a_tile[a_base + k * A_ROW4 + ty];
    let a1 = a_tile[a_base + k * A_ROW4 + a_hi + ty];
    let b0 = b_tile[b_base + k * B_ROW4 + tx];
    let b1 = b_tile[b_base + k * B_ROW4 + b_hi + tx];
    c0a = fma(vec4<f32>(a0.x), b0, c0a); c0b = fma(vec4<f32>(a0.x), b1, c0b);
    c1a = fma(vec4<f32>(a0.y), b0, c1a); c1b = fma(vec4<f32>(a0.y), b1, c1b);
    c2a = fma(vec4<f32>(a0.z), b0, c2a); c2b = fma(vec4<f32>(a0.z), b1, c2b);
    c3a = fma(vec4<f32>(a0.w), b0, c3a); c3b = fma(vec4<f32>(a0.w), b1, c3b);
    c4a = fma(vec4<f32>(a1.x), b0, c4a); c4b = fma(vec4<f32>(a1.x), b1, c4b);
    c5a = fma(vec4<f32>(a1.y), b0, c5a); c5b = fma(vec4<f32>(a1.y), b1, c5b);
    c6a = fma(vec4<f32>(a1.z), b0, c6a); c6b = fma(vec4<f32>(a1.z), b1, c6b);
    c7a = fma(vec4<f32>(a1.w), b0, c7a); c7b = fma(vec4<f32>(a1.w), b1, c7b);
  }
}

// The whole product for the tile at (row0, col0), left in c0a .. c7b (in0 / in1 entries).
// Software pipelined: the next k-slice is loaded into registers before the current one is
// multiplied (the loads' latency hides behind 64 * TK FMAs) and stored into the other workgroup
// buffer after it, so each slice needs one barrier.
fn product(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, I: u32, lid: vec3<u32>) {
  let tid = lid.y * (TN / 8u) + lid.x;
  let slices = (I + TK - 1u) / TK;
  var s = load_slice(src, A, B, row0, col0, 0u, I, tid);
  store_slice(s, 0u, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) { s = load_slice(src, A, B, row0, col0, (t + 1u) * TK, I, tid); }
    multiply_tiles(t & 1u, lid.x, lid.y);
    if (more) { store_slice(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
}

// The same for entries that bind in2.
fn product_in2(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, I: u32, lid: vec3<u32>) {
  let tid = lid.y * (TN / 8u) + lid.x;
  let slices = (I + TK - 1u) / TK;
  var s = load_slice_in2(src, A, B, row0, col0, 0u, I, tid);
  store_slice(s, 0u, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) { s = load_slice_in2(src, A, B, row0, col0, (t + 1u) * TK, I, tid); }
    multiply_tiles(t & 1u, lid.x, lid.y);
    if (more) { store_slice(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
}

// Output element (r, c) of the tile's accumulators: row block i (0..7), column half h (0 = a, 1 = b).
fn result(i: u32, h: u32) -> vec4<f32> {
  switch (i * 2u + h) {
    case 0u: { return c0a; } case 1u: { return c0b; } case 2u: { return c1a; } case 3u: { return c1b; }
    case 4u: { return c2a; } case 5u: { return c2b; } case 6u: { return c3a; } case 7u: { return c3b; }
    case 8u: { return c4a; } case 9u: { return c4b; } case 10u: { return c5a; } case 11u: { return c5b; }
    case 12u: { return c6a; } case 13u: { return c6b; } case 14u: { return c7a; } default: { return c7b; }
  }
}

// Output row and first column of accumulator (i, h).
fn result_origin(i: u32, h: u32, row0: u32, col0: u32, lid: vec3<u32>) -> vec2<u32> {
  let r = row0 + lid.y * 4u + (i % 4u) + (i / 4u) * (TM / 2u);
  let c = col0 + lid.x * 4u + h * (TN / 2u);
  return vec2<u32>(r, c);
}

const EPI_PLAIN: u32 = 0u;
const EPI_RELU: u32 = 1u;       // max(v, 0)
const EPI_RESIDUAL: u32 = 2u;   // v + in2[i]
const EPI_RELU_MASK: u32 = 3u;  // v where in0[i] > 0, else 0

fn epilogue(kind: u32, i: u32, v: f32) -> f32 {
  if (kind == EPI_RELU) { return max(v, 0.0); }
  return v;
}

fn epilogue_in2(kind: u32, i: u32, v: f32) -> f32 {
  if (kind == EPI_RESIDUAL) { return v + in2[i]; }
  if (kind == EPI_RELU_MASK) { return select(0.0, v, in0[i] > 0.0); }
  return epilogue(kind, i, v);
}

// Store the tile into out2 / out3 / out4 (one function each: an entry may only touch its bindings).
fn store_out2(kind: u32, row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  for (var j = 0u; j < 16u; j++) {
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = o.x * Q + c;
        let y = epilogue(kind, i, v[e]);
        if (acc) { out2[i] = out2[i] + y; } else { out2[i] = y; }
      }
    }
  }
}

fn store_out3(kind: u32, row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  for (var j = 0u; j < 16u; j++) {
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = o.x * Q + c;
        let y = epilogue_in2(kind, i, v[e]);
        if (acc) { out3[i] = out3[i] + y; } else { out3[i] = y; }
      }
    }
  }
}

fn store_out4(row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  for (var j = 0u; j < 16u; j++) {
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = o.x * Q + c;
        if (acc) { out4[i] = out4[i] + v[e]; } else { out4[i] = v[e]; }
      }
    }
  }
}

// --- three-buffer entries: out2 (R,Q) = A @ B ------------------------------------------------------
fn three_buffer(src: Sources, kind: u32, A: Operand, B: Operand, R: u32, I: u32, Q: u32,
                wid: vec3<u32>, lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product(src, A, B, row0, col0, I, lid);
  store_out2(kind, row0, col0, R, Q, p3.accumulate != 0u, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // y (N,M) = x (N,K) @ w (K,M)
  three_buffer(Sources(0u, 1u), EPI_PLAIN, operand(p3.K, 1u, p3.N), operand(1u, p3.M, p3.M),
               p3.N, p3.K, p3.M, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // dx (N,K) = dy (N,M) @ w.T: B element (m, k) = w[k * M + m]
  three_buffer(Sources(0u, 1u), EPI_PLAIN, operand(p3.M, 1u, p3.N), operand(p3.M, 1u, p3.K),
               p3.N, p3.M, p3.K, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_dw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // dw (K,M) = x.T @ dy (N,M): A element (k, n) = x[n * K + k]
  three_buffer(Sources(0u, 1u), EPI_PLAIN, operand(1u, p3.K, p3.K), operand(1u, p3.M, p3.M),
               p3.K, p3.N, p3.M, wid, lid);
}

// --- y = res + x @ w ---------------------------------------------------------------------------
@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_residual(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_in2(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, p4.K, lid);
  store_out3(EPI_RESIDUAL, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

// --- dx and dw in one dispatch -------------------------------------------------------------------
// What workgroup `flat` of matmul_backward* computes: x = 0 (a dx (N,K) tile), 1 (a dw (K,M) tile)
// or 2 (nothing: past the last tile); (y, z) = the tile's first output row and column.
fn backward_tile(flat: u32, N: u32, K: u32, M: u32) -> vec3<u32> {
  let dx_cols = (K + TN - 1u) / TN;
  let dx_tiles = dx_cols * ((N + TM - 1u) / TM);
  let dw_cols = (M + TN - 1u) / TN;
  let dw_tiles = dw_cols * ((K + TM - 1u) / TM);
  if (flat < dx_tiles) { return vec3<u32>(0u, (flat / dx_cols) * TM, (flat % dx_cols) * TN); }
  let t = flat - dx_tiles;
  if (t < dw_tiles) { return vec3<u32>(1u, (t / dw_cols) * TM, (t % dw_cols) * TN); }
  return vec3<u32>(2u, 0u, 0u);
}

fn backward_both(dx_kind: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
  let N = p5.N;
  let K = p5.K;
  let M = p5.M;
  let tile = backward_tile(wid.y * nwg.x + wid.x, N, K, M);
  let acc = p5.accumulate != 0u;
  if (tile.x == 0u) {
    // dx (N,K) = dy (in2, (N,M)) @ w.T (in1 stored (K,M))
    product_in2(Sources(2u, 1u), operand(M, 1u, N), operand(M, 1u, K), tile.y, tile.z, M, lid);
    store_out3(dx_kind, tile.y, tile.z, N, K, acc, lid);
  } else if (tile.x == 1u) {
    // dw (K,M) = x.T (in0 stored (N,K)) @ dy (in2, (N,M))
    product_in2(Sources(0u, 2u), operand(1u, K, K), operand(1u, M, M), tile.y, tile.z, N, lid);
    store_out4(tile.y, tile.z, K, M, acc, lid);
  }
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both(EPI_PLAIN, wid, nwg, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both(EPI_RELU_MASK, wid, nwg, lid);
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

// Second half of tile_rstd (and tile_rstd_v4): a_tile[k * A_ROW4 + r / 4][r % 4] holds row r's sum
// of squares over k, k + TK, ... for k < TK; each row adds its TK sums in k order.
fn rstd_from_slot_sums(row0: u32, N: u32, K: u32, eps: f32, tid: u32, keep: bool) {
  let threads = invocations();
  for (var r = tid; r < TM; r += threads) {
    var total = 0.0;
    for (var k = 0u; k < TK; k++) { total += a_tile[k * A_ROW4 + r / 4u][r % 4u]; }
    let rstd = 1.0 / sqrt(total / f32(K) + eps);
    rstd_sh[r] = rstd;
    if (keep && row0 + r < N) { out5[row0 + r] = rstd; }
  }
  workgroupBarrier();  // rstd_sh is complete and the a_tile sums are read: staging may begin
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
  let tid = lid.y * (TN / 8u) + lid.x;
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
    multiply_tiles(t & 1u, lid.x, lid.y);
    if (more) { store_slice(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
  store_out3(kind, row0, col0, N, M, false, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward(EPI_PLAIN, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_rmsnorm_relu(@builtin(workgroup_id) wid: vec3<u32>,
                               @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward(EPI_RELU, wid, lid);
}

// === vec4-load twins: the entries above with one 16-byte load per global read ====================
// matmul_forward_v4, _backward_dx_v4, _backward_dw_v4, _forward_residual_v4, _backward_v4,
// _backward_relu_v4, _forward_rmsnorm_v4, _forward_rmsnorm_relu_v4: same bindings, uniform, grid and
// overrides as their scalar entry; the operands are read through in0v..in2v. Precondition (checked by
// registry.matmul_entry, the only chooser): K % 4 == 0 and M % 4 == 0. Those are the contiguous
// dimensions of every operand read (x (N,K), w (K,M), dy and res (N,M), g (K,)); N may be anything
// (rows are never contiguous). Then a vec4 along an operand's contiguous dimension starts at a
// multiple of 4 elements and is wholly inside or wholly outside the operand at every edge.
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
  let tid = lid.y * (TN / 8u) + lid.x;
  let slices = (I + TK - 1u) / TK;
  var s = load_slice_v4(src, A, B, row0, col0, 0u, I, tid);
  store_slice_v4(s, 0u, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) { s = load_slice_v4(src, A, B, row0, col0, (t + 1u) * TK, I, tid); }
    multiply_tiles(t & 1u, lid.x, lid.y);
    if (more) { store_slice_v4(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
}

fn product_in2_v4(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, I: u32, lid: vec3<u32>) {
  let tid = lid.y * (TN / 8u) + lid.x;
  let slices = (I + TK - 1u) / TK;
  var s = load_slice_in2_v4(src, A, B, row0, col0, 0u, I, tid);
  store_slice_v4(s, 0u, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) { s = load_slice_in2_v4(src, A, B, row0, col0, (t + 1u) * TK, I, tid); }
    multiply_tiles(t & 1u, lid.x, lid.y);
    if (more) { store_slice_v4(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
}

// epilogue_in2 / store_out3 reading res and x through in2v / in0v (element i of a vec4 array).
fn epilogue_in2_v4(kind: u32, i: u32, v: f32) -> f32 {
  if (kind == EPI_RESIDUAL) { return v + in2v[i / 4u][i % 4u]; }
  if (kind == EPI_RELU_MASK) { return select(0.0, v, in0v[i / 4u][i % 4u] > 0.0); }
  return epilogue(kind, i, v);
}

fn store_out3_v4(kind: u32, row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  for (var j = 0u; j < 16u; j++) {
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

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  three_buffer_v4(Sources(0u, 1u), EPI_PLAIN, operand(p3.K, 1u, p3.N), operand(1u, p3.M, p3.M),
                  p3.N, p3.K, p3.M, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_dx_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  three_buffer_v4(Sources(0u, 1u), EPI_PLAIN, operand(p3.M, 1u, p3.N), operand(p3.M, 1u, p3.K),
                  p3.N, p3.M, p3.K, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_dw_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  three_buffer_v4(Sources(0u, 1u), EPI_PLAIN, operand(1u, p3.K, p3.K), operand(1u, p3.M, p3.M),
                  p3.K, p3.N, p3.M, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_residual_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  product_in2_v4(Sources(0u, 1u), operand(p4.K, 1u, p4.N), operand(1u, p4.M, p4.M), row0, col0, p4.K, lid);
  store_out3_v4(EPI_RESIDUAL, row0, col0, p4.N, p4.M, p4.accumulate != 0u, lid);
}

fn backward_both_v4(dx_kind: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
  let N = p5.N;
  let K = p5.K;
  let M = p5.M;
  let tile = backward_tile(wid.y * nwg.x + wid.x, N, K, M);
  let acc = p5.accumulate != 0u;
  if (tile.x == 0u) {  // dx (N,K) = dy @ w.T
    product_in2_v4(Sources(2u, 1u), operand(M, 1u, N), operand(M, 1u, K), tile.y, tile.z, M, lid);
    store_out3_v4(dx_kind, tile.y, tile.z, N, K, acc, lid);
  } else if (tile.x == 1u) {  // dw (K,M) = x.T @ dy
    product_in2_v4(Sources(0u, 2u), operand(1u, K, K), operand(1u, M, M), tile.y, tile.z, N, lid);
    store_out4(tile.y, tile.z, K, M, acc, lid);
  }
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both_v4(EPI_PLAIN, wid, nwg, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_backward_relu_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_id) lid: vec3<u32>) {
  backward_both_v4(EPI_RELU_MASK, wid, nwg, lid);
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
  let tid = lid.y * (TN / 8u) + lid.x;
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
    multiply_tiles(t & 1u, lid.x, lid.y);
    if (more) { store_slice_v4(s, (t + 1u) & 1u, A, B, tid); }
    workgroupBarrier();
  }
  store_out3_v4(kind, row0, col0, N, M, false, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_rmsnorm_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward_v4(EPI_PLAIN, wid, lid);
}

@compute @workgroup_size(TN / 8u, TM / 8u)
fn matmul_forward_rmsnorm_relu_v4(@builtin(workgroup_id) wid: vec3<u32>,
                                  @builtin(local_invocation_id) lid: vec3<u32>) {
  normed_forward_v4(EPI_RELU, wid, lid);
}
