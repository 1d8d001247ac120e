// matmul_tiles.wgsl — the tile machinery shared by matmul.wgsl and matmul_vec4.wgsl (included by
// both: `// #include "matmul_tiles.wgsl"`, expanded by registry.shader_source; the stores and
// epilogues are in matmul_stores.wgsl, included after it). It has no entry point of its own;
// matmul.wgsl's header documents the family: math, bindings, overrides, grids and the speed
// reasoning behind this code.

override TM: u32 = 64u;  // output rows per workgroup (RPI per invocation in y)
override TN: u32 = 64u;  // output columns per workgroup (RPI per invocation in x)
// Outputs per invocation along rows and along columns: 8 (the default: two 4 x 4 quads per dimension,
// half a tile apart, 16 vec4 accumulators, 64 FMAs per 4 vec4 reads of the tiles) or 4 (one 4 x 4
// quad, c0a .. c3a only: 4x the invocations per tile). 4 is for products with few outputs (a long
// inner dimension, small models) where 8 x 8 leaves a GPU a few warps per multiprocessor
// (matmul_rules.matmul_small_outputs picks it).
override RPI: u32 = 8u;
// inner-dimension slice per step: 8 (4 for 32-wide tiles) at RPI 8; at RPI 4, 16 (8 for 32-wide
// tiles): with 4x the invocations, one barrier per 8 k would leave each only 128 FMAs between two.
override TK: u32 = select(min(8u, min(TM, TN) / 8u), min(16u, min(TM, TN) / 4u), RPI == 4u);
// (TK is a multiple of 4: a _v4 twin's vec4 of 4 k values never straddles two slices. A slice of an
// operand is TK * T / 4 vec4 for (TM / RPI) * (TN / RPI) invocations, so TK <= 8 * min(TM, TN) / RPI^2
// keeps it within two vec4 loads per invocation: Staged. Both defaults do.)
// A_ROW4, B_ROW4: derived from TM, TN (overrides only because workgroup array sizes must be
// override expressions); callers never set them.
override A_ROW4: u32 = TM / 4u + 1u;  // vec4 slots per k row of a_tile: TM / 4, plus one of padding
override B_ROW4: u32 = TN / 4u + 1u;  // the same for b_tile
// The split entries (matmul_backward_split, _relu_split and twins) only: how many parts dw's inner
// dimension N is cut into (1 .. 16). Other entries ignore it.
override SPLIT: u32 = 2u;
// The split entries only: how many parts dx's inner dimension M is cut into (1 .. 16); part s >= 1
// goes into out3 right after dx, at s * N * K + i: the consumer adds the parts (rmsnorm_backward's
// dy_parts). Plain entries only: the relu mask cannot be applied to a part.
override DX_SPLIT: u32 = 1u;
// Sliced K (1, 2, 4 or 8; the entries built on product / product_in2 and their _v4 twins, not the
// rmsnorm entries): the workgroup is KGROUPS groups of (TN/8) x (TM/8) invocations (lid.z = group),
// which multiply KGROUPS consecutive k-slices at once, each in its own pair of workgroup buffers, and
// add their 8 x 8 results at the end in group order (reduce_groups), group 0 storing the tile. More
// invocations per tile: a product with few, long tiles (a long inner dimension) keeps more of a
// large GPU's lanes busy. Outputs equal KGROUPS = 1's up to the order of the sum (deterministic).
// Needs (KGROUPS - 1) * 8 * (TM/8) * (TN/8) <= the tiles' vec4 slots (a_tile + b_tile): any KGROUPS at
// TM, TN <= 64, KGROUPS <= 2 at 128 x 128 (at RPI 4: (KGROUPS - 1) * 4 * (TM/4) * (TN/4), reduce_groups_4x4).
// Its only chooser, matmul_rules.matmul_forward_kgroups, takes 4 at 32 x 32 with RPI 4
// (tests/test_kernels_matmul.py covers 2 .. 8 at 64 and 32, RPI 8 and 4).
override KGROUPS: u32 = 1u;

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

// The split entries' uniform: MatmulParams plus where dw's extra parts go (part s >= 1 of element i
// at out5[(s - 1) * part_stride + i]).
struct SplitMatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
  part_stride: u32,
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
@group(0) @binding(5) var<storage, read_write> out5: array<f32>;  // rstd (rmsnorm) | dw parts (split)
@group(0) @binding(3) var<storage, read> in3: array<f32>;         // res (forward_bias_residual)
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
@group(0) @binding(6) var<uniform> p6s: SplitMatmulParams;

// Two buffers of TK x A_ROW4 per group (one being multiplied, one being filled): buffer `buf` of
// group g is slot buf * KGROUPS + g; a_tile[slot * TK * A_ROW4 + k * A_ROW4 + r / 4] = A rows r..r+3
// at k; b_tile the same for B's columns with B_ROW4.
var<workgroup> a_tile: array<vec4<f32>, 2u * KGROUPS * TK * A_ROW4>;
var<workgroup> b_tile: array<vec4<f32>, 2u * KGROUPS * TK * B_ROW4>;
var<workgroup> rstd_sh: array<f32, TM>;  // rmsnorm entries: rstd of the tile's TM rows

// The invocation's 8 x 8 outputs: rows ty*4 + i (c{i}) and TM/2 + ty*4 + i (c{i+4}), i = 0..3;
// columns tx*4 .. +3 (suffix a) and TN/2 + tx*4 .. +3 (suffix b). At RPI 4 only c0a .. c3a (rows
// ty*4 + i, columns tx*4 .. +3); the others stay 0 and are never stored (owned()).
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

fn invocations() -> u32 { return (TM / RPI) * (TN / RPI); }

// Invocation index within its group of invocations (lid.z is the sliced-K group).
fn local_index(lid: vec3<u32>) -> u32 { return lid.y * (TN / RPI) + lid.x; }

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

// c += A_tile @ B_tile (workgroup buffer `buf`) for this invocation's RPI x RPI outputs.
fn multiply(buf: u32, tx: u32, ty: u32) {
  if (RPI == 4u) { multiply_tiles_4x4(buf, tx, ty); } else { multiply_tiles(buf, tx, ty); }
}

// RPI 4: one vec4 of A and one of B per k, 16 FMAs (each accumulator sums k in the same order as
// at RPI 8, so a tile's outputs do not depend on RPI).
fn multiply_tiles_4x4(buf: u32, tx: u32, ty: u32) {
  let a_base = buf * TK * A_ROW4;
  let b_base = buf * TK * B_ROW4;
  for (var k = 0u; k < TK; k++) {
    let a0 = a_tile[a_base + k * A_ROW4 + ty];
    let b0 = b_tile[b_base + k * B_ROW4 + tx];
    c0a = fma(vec4<f32>(a0.x), b0, c0a);
    c1a = fma(vec4<f32>(a0.y), b0, c1a);
    c2a = fma(vec4<f32>(a0.z), b0, c2a);
    c3a = fma(vec4<f32>(a0.w), b0, c3a);
  }
}

// RPI 8: the invocation's 8 x 8 outputs.
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

// Sliced K's end: the groups' accumulators added into group 0's, in group order (1, 2, ...), half
// (a or b) at a time through the idle tiles: groups g >= 1 put their 8 vec4 of the half at scratch
// slot ((g - 1) * 8 + i) * n + tid (a_tile first, then b_tile), group 0 adds them. Workgroup-uniform
// (every invocation reaches both barriers); nothing happens when KGROUPS == 1.
// The two halves are written out accumulator by accumulator: picking an accumulator through a
// switch or an index is what made the driver's code slower in the epilogue experiments.
fn scratch_put(e: u32, v: vec4<f32>) {
  let na = 2u * KGROUPS * TK * A_ROW4;
  if (e < na) { a_tile[e] = v; } else { b_tile[e - na] = v; }
}

fn scratch_get(e: u32) -> vec4<f32> {
  let na = 2u * KGROUPS * TK * A_ROW4;
  if (e < na) { return a_tile[e]; }
  return b_tile[e - na];
}

fn reduce_groups(tid: u32, g: u32) {
  if (KGROUPS == 1u) { return; }
  if (RPI == 4u) { reduce_groups_4x4(tid, g); return; }
  let n = invocations();
  if (g > 0u) {
    let o = (g - 1u) * 8u;
    scratch_put((o + 0u) * n + tid, c0a); scratch_put((o + 1u) * n + tid, c1a);
    scratch_put((o + 2u) * n + tid, c2a); scratch_put((o + 3u) * n + tid, c3a);
    scratch_put((o + 4u) * n + tid, c4a); scratch_put((o + 5u) * n + tid, c5a);
    scratch_put((o + 6u) * n + tid, c6a); scratch_put((o + 7u) * n + tid, c7a);
  }
  workgroupBarrier();
  if (g == 0u) {
    for (var h = 1u; h < KGROUPS; h++) {
      let o = (h - 1u) * 8u;
      c0a += scratch_get((o + 0u) * n + tid); c1a += scratch_get((o + 1u) * n + tid);
      c2a += scratch_get((o + 2u) * n + tid); c3a += scratch_get((o + 3u) * n + tid);
      c4a += scratch_get((o + 4u) * n + tid); c5a += scratch_get((o + 5u) * n + tid);
      c6a += scratch_get((o + 6u) * n + tid); c7a += scratch_get((o + 7u) * n + tid);
    }
  }
  workgroupBarrier();
  if (g > 0u) {
    let o = (g - 1u) * 8u;
    scratch_put((o + 0u) * n + tid, c0b); scratch_put((o + 1u) * n + tid, c1b);
    scratch_put((o + 2u) * n + tid, c2b); scratch_put((o + 3u) * n + tid, c3b);
    scratch_put((o + 4u) * n + tid, c4b); scratch_put((o + 5u) * n + tid, c5b);
    scratch_put((o + 6u) * n + tid, c6b); scratch_put((o + 7u) * n + tid, c7b);
  }
  workgroupBarrier();
  if (g == 0u) {
    for (var h = 1u; h < KGROUPS; h++) {
      let o = (h - 1u) * 8u;
      c0b += scratch_get((o + 0u) * n + tid); c1b += scratch_get((o + 1u) * n + tid);
      c2b += scratch_get((o + 2u) * n + tid); c3b += scratch_get((o + 3u) * n + tid);
      c4b += scratch_get((o + 4u) * n + tid); c5b += scratch_get((o + 5u) * n + tid);
      c6b += scratch_get((o + 6u) * n + tid); c7b += scratch_get((o + 7u) * n + tid);
    }
  }
}

// reduce_groups at RPI 4: only c0a .. c3a hold outputs, so one round through the scratch (slot
// ((g - 1) * 4 + i) * n + tid); needs (KGROUPS - 1) * 4 * n <= the tiles' vec4 slots (any KGROUPS <= 8
// at 32 x 32 and 64 x 64).
fn reduce_groups_4x4(tid: u32, g: u32) {
  let n = invocations();
  if (g > 0u) {
    let o = (g - 1u) * 4u;
    scratch_put((o + 0u) * n + tid, c0a); scratch_put((o + 1u) * n + tid, c1a);
    scratch_put((o + 2u) * n + tid, c2a); scratch_put((o + 3u) * n + tid, c3a);
  }
  workgroupBarrier();
  if (g == 0u) {
    for (var h = 1u; h < KGROUPS; h++) {
      let o = (h - 1u) * 4u;
      c0a += scratch_get((o + 0u) * n + tid); c1a += scratch_get((o + 1u) * n + tid);
      c2a += scratch_get((o + 2u) * n + tid); c3a += scratch_get((o + 3u) * n + tid);
    }
  }
}

// The whole product for the tile at (row0, col0), left in c0a .. c7b (in0 / in1 entries).
// Software pipelined: the next k-slice is loaded into registers before the current one is
// multiplied (the loads' latency hides behind 64 * TK FMAs) and stored into the other workgroup
// buffer after it, so each slice needs one barrier.
// With KGROUPS > 1, group g takes slices g, g + KGROUPS, ... (round t: slice t * KGROUPS + g; slices
// past the end load zeros) and the groups' results are added by reduce_groups.
fn product(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, I: u32, lid: vec3<u32>) {
  let tid = local_index(lid);
  let g = lid.z;
  let rounds = ((I + TK - 1u) / TK + KGROUPS - 1u) / KGROUPS;
  var s = load_slice(src, A, B, row0, col0, g * TK, I, tid);
  store_slice(s, g, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < rounds; t++) {
    let more = t + 1u < rounds;
    if (more) { s = load_slice(src, A, B, row0, col0, ((t + 1u) * KGROUPS + g) * TK, I, tid); }
    multiply((t & 1u) * KGROUPS + g, lid.x, lid.y);
    if (more) { store_slice(s, ((t + 1u) & 1u) * KGROUPS + g, A, B, tid); }
    workgroupBarrier();
  }
  reduce_groups(tid, g);
}

// The same for entries that bind in2, over the inner range k_begin .. I - 1 (k_begin a multiple of
// TK; 0 but for the split entries' dw parts).
fn product_in2(src: Sources, A: Operand, B: Operand, row0: u32, col0: u32, k_begin: u32, I: u32,
               lid: vec3<u32>) {
  let tid = local_index(lid);
  let g = lid.z;
  let rounds = ((I - k_begin + TK - 1u) / TK + KGROUPS - 1u) / KGROUPS;
  var s = load_slice_in2(src, A, B, row0, col0, k_begin + g * TK, I, tid);
  store_slice(s, g, A, B, tid);
  workgroupBarrier();
  for (var t = 0u; t < rounds; t++) {
    let more = t + 1u < rounds;
    if (more) { s = load_slice_in2(src, A, B, row0, col0, k_begin + ((t + 1u) * KGROUPS + g) * TK, I, tid); }
    multiply((t & 1u) * KGROUPS + g, lid.x, lid.y);
    if (more) { store_slice(s, ((t + 1u) & 1u) * KGROUPS + g, A, B, tid); }
    workgroupBarrier();
  }
  reduce_groups(tid, g);
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
