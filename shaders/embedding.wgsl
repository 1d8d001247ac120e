// embedding.wgsl — token + position embedding and its backward, without float atomics.
//
// Math (numpy, reference/ops.py embedding_forward / embedding_backward):
//   embedding_forward:        x[b,t,:] = wte[idx[b,t]] + wpe[t]          -> x (B,T,C)
//   embedding_backward_dwte:  dwte = zeros((V,C)); np.add.at(dwte, idx.reshape(-1), dx.reshape(B*T, C))
//   embedding_backward_dwpe:  dwpe = zeros((Tmax,C)); dwpe[:T] = dx.sum(axis=0)
//   embedding_backward_dwte_rows: the same dwte, written only for the rows of tokens that occur in
//                             idx: the CALLER ZEROES dwte first (clearBuffer); cheaper when N < V.
// Shapes: idx (B,T) u32 tokens (< V; larger ones are clamped to V-1), wte (V,C), wpe (Tmax,C),
//         x and dx (B,T,C); all f32 row-major. Both backward entries OVERWRITE their output.
//
// Scatter-add without float atomics: embedding_backward_dwte runs one workgroup per (vocabulary row
// v, block of WG columns). The workgroup scans idx in chunks of WG positions: each invocation tests
// one position (idx == v) and sets its bit in a workgroup bitmask, then every invocation adds
// dx[n, c] of the matching positions (the set bits, lowest first) for its own column c, in position
// order (deterministic). Cost: V * ceil(C/WG) * N reads of idx (cheap, shared by WG columns), WG/32
// words per chunk, plus the N*C reads of dx that match. (Each invocation testing all WG positions of
// every chunk itself would be V * C * N steps: 0.8 ms of the large model's step on an H200.)
// embedding_backward_dwte_rows instead runs one invocation per (position n, column c): only the
// FIRST position holding a token sums the dx rows of every position with that token (ascending n,
// the same order as above, so both entries give identical bits) and writes that row. Cost: N*C
// invocations scanning N idx each (N^2 C); far fewer workgroups than V*ceil(C/WG) when N < V, which
// is what software adapters (SwiftShader, llvmpipe) pay for.
//
// Bindings (group 0, uniform last):
//   embedding_forward:       0 idx (read u32), 1 wte (read), 2 wpe (read), 3 x (read_write), 4 params
//   embedding_backward_dwte: 0 idx (read u32), 1 dx (read), 2 dwte (read_write), 3 params
//   embedding_backward_dwpe: 0 dx (read), 1 dwpe (read_write), 2 params
//   embedding_backward_dwte_rows: as embedding_backward_dwte
// Overrides: WG = 64 (a power of two is not required)
// Grid: forward grid_1d(B*T*C, WG); backward_dwte (ceil(C/WG), V, 1); backward_dwpe grid_1d(Tmax*C, WG);
//       backward_dwte_rows grid_1d(B*T*C, WG)
// Entry points: embedding_forward, embedding_backward_dwte, embedding_backward_dwte_rows,
//               embedding_backward_dwpe

override WG: u32 = 64u;

struct EmbeddingParams {
  B: u32,
  T: u32,
  C: u32,
  V: u32,
  Tmax: u32,  // rows of wpe (the model's block size); T <= Tmax
};

@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read> wte: array<f32>;
@group(0) @binding(2) var<storage, read> wpe: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<uniform> p4: EmbeddingParams;
// embedding_backward_dwte
@group(0) @binding(1) var<storage, read> dx1: array<f32>;
@group(0) @binding(2) var<storage, read_write> dwte: array<f32>;
@group(0) @binding(3) var<uniform> p3: EmbeddingParams;
// embedding_backward_dwpe
@group(0) @binding(0) var<storage, read> dx0: array<f32>;
@group(0) @binding(1) var<storage, read_write> dwpe: array<f32>;
@group(0) @binding(2) var<uniform> p2: EmbeddingParams;

// Bit j of the chunk's word j / 32 is set where idx[n0 + j] == v (atomicOr: the same bits whatever
// the order). HIT_WORDS derived from WG: callers never set it.
override HIT_WORDS: u32 = (WG + 31u) / 32u;
var<workgroup> hit: array<atomic<u32>, HIT_WORDS>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);  // element of x (B,T,C)
  if (i >= p4.B * p4.T * p4.C) { return; }
  let n = i / p4.C;  // row b*T + t
  let c = i % p4.C;
  let t = n % p4.T;
  let tok = min(idx[n], p4.V - 1u);
  x[i] = wte[tok * p4.C + c] + wpe[t * p4.C + c];
}

@compute @workgroup_size(WG)
fn embedding_backward_dwte(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let v = wid.y;
  let c = wid.x * WG + lid;
  let n_rows = p3.B * p3.T;
  var acc = 0.0;
  for (var n0 = 0u; n0 < n_rows; n0 += WG) {
    if (lid < HIT_WORDS) { atomicStore(&hit[lid], 0u); }
    workgroupBarrier();
    let n = n0 + lid;
    if (n < n_rows && idx[n] == v) { atomicOr(&hit[lid / 32u], 1u << (lid % 32u)); }
    workgroupBarrier();
    if (c < p3.C) {
      // the chunk's matching positions in ascending order: set bits, lowest first (tokens are
      // sparse: about N / V matches per row, so this skips nearly all of the WG positions)
      for (var w = 0u; w < HIT_WORDS; w++) {
        var bits = atomicLoad(&hit[w]);
        while (bits != 0u) {
          let j = w * 32u + countTrailingZeros(bits);
          acc += dx1[(n0 + j) * p3.C + c];
          bits &= bits - 1u;
        }
      }
    }
    workgroupBarrier();
  }
  if (c < p3.C) { dwte[v * p3.C + c] = acc; }
}

@compute @workgroup_size(WG)
fn embedding_backward_dwte_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);  // (position n, column c) of dx (B*T, C)
  let n_rows = p3.B * p3.T;
  if (i >= n_rows * p3.C) { return; }
  let n = i / p3.C;
  let c = i % p3.C;
  let v = idx[n];
  for (var m = 0u; m < n; m++) {
    if (idx[m] == v) { return; }  // an earlier position owns this token's row
  }
  var acc = 0.0;
  for (var m = n; m < n_rows; m++) {
    if (idx[m] == v) { acc += dx1[m * p3.C + c]; }
  }
  if (v < p3.V) { dwte[v * p3.C + c] = acc; }
}

@compute @workgroup_size(WG)
fn embedding_backward_dwpe(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);  // element of dwpe (Tmax,C)
  if (i >= p2.Tmax * p2.C) { return; }
  let t = i / p2.C;
  let c = i % p2.C;
  var acc = 0.0;
  if (t < p2.T) {
    for (var b = 0u; b < p2.B; b++) { acc += dx0[(b * p2.T + t) * p2.C + c]; }
  }
  dwpe[i] = acc;
}
