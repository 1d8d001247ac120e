// matvec.wgsl — a product with few rows as dot products: decoding one token (N = 1), where a tile of
// matmul.wgsl would compute TM rows for one (63 of 64 of its work wasted).
//
// Math (numpy):
//   matvec_transposed: out = a @ w[:K].T          a (N,M), w (Kp,M) with Kp >= K rows -> out (N,K)
//       (matmul.wgsl's matmul_backward_dx with dy = a: the same bindings and uniform.) GPT-2's tied head
//       at decode: logits (1,V) = x (1,C) @ wte[:V].T, wte stored (Vp,C); rows K.. of w are never read.
// All f32, row-major; M % 4 == 0 (a and w are read as vec4 along M). accumulate = 0 overwrites out,
// 1 adds into it.
// Each output is one row of w against one row of a: LANES invocations share a row of w, lane j taking
// the vec4s j, j + LANES, ... of it (neighbouring lanes read neighbouring 16 bytes: coalesced), and
// add their partial dot products by a tree in workgroup memory (a fixed order: deterministic). The N
// rows of a are done one after the other by the same invocations (w's row stays in cache).
//
// Bindings (group 0, uniform last): 0 a (read), 1 w (read), 2 out (read_write), 3 params (MatmulParams:
//   N rows of a, K outputs per row = rows of w used, M the dot products' length, accumulate)
// Overrides: WG = 64 invocations; LANES = 8 per row of w (a power of two dividing WG): WG / LANES rows
//   of w per workgroup
// Grid: grid_1d(ceil(K / (WG / LANES)) * WG, WG)
// Entry points: matvec_transposed

override WG: u32 = 64u;
override LANES: u32 = 8u;

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: MatmulParams;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn matvec_transposed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let k = (wid.y * nwg.x + wid.x) * (WG / LANES) + lid / LANES;  // the row of w (= output column)
  let lane = lid % LANES;
  let M4 = p.M / 4u;
  let valid = k < p.K;  // no early return: the barriers below need the whole workgroup
  for (var n = 0u; n < p.N; n++) {
    var acc = vec4<f32>(0.0);
    if (valid) {
      for (var j = lane; j < M4; j += LANES) { acc = fma(a[n * M4 + j], w[k * M4 + j], acc); }
    }
    var s = (acc.x + acc.y) + (acc.z + acc.w);
    if (LANES > 1u) {
      red[lid] = s;
      workgroupBarrier();
      for (var h = LANES / 2u; h > 0u; h = h / 2u) {
        if (lane < h) { red[lid] = red[lid] + red[lid + h]; }
        workgroupBarrier();
      }
      s = red[lid];
      workgroupBarrier();  // red is rewritten for the next row of a
    }
    if (valid && lane == 0u) {
      let o = n * p.K + k;
      if (p.accumulate != 0u) { out[o] = out[o] + s; } else { out[o] = s; }
    }
  }
}
