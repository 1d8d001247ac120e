// matmul.wgsl — the linear layer y = x @ w and the two products its backward needs.
//
// Math (numpy, reference/ops.py matmul_forward / matmul_backward):
//   matmul_forward:      y  = x @ w       x (N,K), w (K,M)  -> y  (N,M)
//   matmul_backward_dx:  dx = dy @ w.T    dy (N,M), w (K,M) -> dx (N,K)
//   matmul_backward_dw:  dw = x.T @ dy    x (N,K), dy (N,M) -> dw (K,M)
// All arrays f32, row-major. The uniform fields are the FORWARD's N, K, M for all three entries.
// accumulate = 0: out = product (overwrite); accumulate = 1: out += product (e.g. a gradient that
// receives several contributions, or dx added into the residual stream's gradient).
//
// Bindings (group 0): 0 first operand (read), 1 second operand (read), 2 out (read_write),
//                     3 params (uniform MatmulParams)
//   forward: x, w, y      backward_dx: dy, w, dx      backward_dw: x, dy, dw
// Overrides: none. Tile sizes are consts: TM x TN = 64 x 64 outputs per workgroup, inner slice TK = 16,
//   16 x 16 invocations, each owning a 4 x 4 block of outputs held in four vec4 accumulators
//   (no dynamically indexed function-scope arrays: they are very slow under naga).
// Grid: (ceil(out_cols / 64), ceil(out_rows / 64), 1):
//   forward (ceil(M/64), ceil(N/64)), backward_dx (ceil(K/64), ceil(N/64)), backward_dw (ceil(M/64), ceil(K/64))
// Entry points: matmul_forward, matmul_backward_dx, matmul_backward_dw
//
// Every product is out (R, Q) = A (R, I) @ B (I, Q) over an inner dimension I; the entries differ
// only in how A and B are read from memory (MODE_* below). Edges past R, I, Q load zeros and are
// not stored, so any shape works (N, K, M need not be multiples of the tile).

const TM: u32 = 64u;  // output rows per workgroup
const TN: u32 = 64u;  // output columns per workgroup
const TK: u32 = 16u;  // inner-dimension slice loaded per step

const MODE_NN: u32 = 0u;  // A (R,I) row-major,            B (I,Q) row-major       (forward)
const MODE_NT: u32 = 1u;  // A (R,I) row-major,            B stored (Q,I): B = w.T (backward_dx)
const MODE_TN: u32 = 2u;  // A stored (I,R): A = x.T,      B (I,Q) row-major       (backward_dw)

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: MatmulParams;

var<workgroup> a_tile: array<f32, 1024>;  // TK x TM, a_tile[k * TM + r]
var<workgroup> b_tile: array<f32, 1024>;  // TK x TN, b_tile[k * TN + c]

fn load_a(mode: u32, r: u32, k: u32, R: u32, I: u32) -> f32 {
  if (r >= R || k >= I) { return 0.0; }
  if (mode == MODE_TN) { return a[k * R + r]; }
  return a[r * I + k];
}

fn load_b(mode: u32, k: u32, c: u32, I: u32, Q: u32) -> f32 {
  if (k >= I || c >= Q) { return 0.0; }
  if (mode == MODE_NT) { return b[c * I + k]; }
  return b[k * Q + c];
}

fn store(r: u32, c: u32, R: u32, Q: u32, v: f32) {
  if (r >= R || c >= Q) { return; }
  let i = r * Q + c;
  if (p.accumulate != 0u) { out[i] = out[i] + v; } else { out[i] = v; }
}

fn store_row(r: u32, c0: u32, R: u32, Q: u32, v: vec4<f32>) {
  store(r, c0, R, Q, v.x);
  store(r, c0 + 1u, R, Q, v.y);
  store(r, c0 + 2u, R, Q, v.z);
  store(r, c0 + 3u, R, Q, v.w);
}

fn matmul_tile(mode: u32, wid: vec3<u32>, lid: vec3<u32>, R: u32, I: u32, Q: u32) {
  let tid = lid.y * 16u + lid.x;
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  var acc0 = vec4<f32>(0.0);  // output row ty*4 + 0, columns tx*4 .. tx*4+3
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < I; k0 += TK) {
    // Each invocation loads 4 of the 1024 elements of each tile; the index order follows the
    // operand's memory layout so neighbouring invocations read neighbouring addresses.
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      var ar = e / TK;
      var ak = e % TK;
      if (mode == MODE_TN) { ar = e % TM; ak = e / TM; }
      a_tile[ak * TM + ar] = load_a(mode, row0 + ar, k0 + ak, R, I);
      var bc = e % TN;
      var bk = e / TN;
      if (mode == MODE_NT) { bc = e / TK; bk = e % TK; }
      b_tile[bk * TN + bc] = load_b(mode, k0 + bk, col0 + bc, I, Q);
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let ao = k * TM + lid.y * 4u;
      let bo = k * TN + lid.x * 4u;
      let bv = vec4<f32>(b_tile[bo], b_tile[bo + 1u], b_tile[bo + 2u], b_tile[bo + 3u]);
      acc0 = fma(vec4<f32>(a_tile[ao]), bv, acc0);
      acc1 = fma(vec4<f32>(a_tile[ao + 1u]), bv, acc1);
      acc2 = fma(vec4<f32>(a_tile[ao + 2u]), bv, acc2);
      acc3 = fma(vec4<f32>(a_tile[ao + 3u]), bv, acc3);
    }
    workgroupBarrier();
  }
  let r = row0 + lid.y * 4u;
  let c = col0 + lid.x * 4u;
  store_row(r, c, R, Q, acc0);
  store_row(r + 1u, c, R, Q, acc1);
  store_row(r + 2u, c, R, Q, acc2);
  store_row(r + 3u, c, R, Q, acc3);
}

@compute @workgroup_size(16, 16)
fn matmul_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  matmul_tile(MODE_NN, wid, lid, p.N, p.K, p.M);  // y (N,M) = x (N,K) @ w (K,M)
}

@compute @workgroup_size(16, 16)
fn matmul_backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  matmul_tile(MODE_NT, wid, lid, p.N, p.M, p.K);  // dx (N,K) = dy (N,M) @ w.T (M,K)
}

@compute @workgroup_size(16, 16)
fn matmul_backward_dw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  matmul_tile(MODE_TN, wid, lid, p.K, p.N, p.M);  // dw (K,M) = x.T (K,N) @ dy (N,M)
}
