// matmul_stores.wgsl — where a tile's results go, shared by matmul.wgsl and matmul_vec4.wgsl (included
// by both after matmul_tiles.wgsl: `// #include "matmul_stores.wgsl"`, expanded by
// registry.shader_source). The accumulators and bindings it reads are matmul_tiles.wgsl's; it has no
// entry point of its own: the epilogues (ReLU, residual, bias, GELU), the stores into each output
// binding, and which tile or split-sum part a workgroup of a backward entry computes.

// Whether accumulator (j / 2, j % 2) (result()'s numbering) holds this invocation's outputs: all 16
// at RPI 8, c0a .. c3a at RPI 4.
fn owned(j: u32) -> bool { return RPI == 8u || (j % 2u == 0u && j < 8u); }

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
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
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
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
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
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
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

// The bias entries' epilogue (matmul_forward_bias, _bias_gelu, _bias_residual and their _v4 twins):
// t = v + b[c], then gelu(t) (EPI_GELU) or res[i] + t (store_bias_out4). Their products (product,
// product_v4) read only in0 / in0v and in1 / in1v, so b (in2) and res (in3) are plain f32 arrays in the
// twins too, and one store function serves both.
const EPI_GELU: u32 = 4u;  // gelu(v), GPT-2's tanh approximation (elementwise.wgsl's gelu_forward)
const GELU_K: f32 = 0.7978845608028654;  // sqrt(2 / pi)
const GELU_A: f32 = 0.044715;

// x * sigmoid(2u) = 0.5 x (1 + tanh(u)), u = GELU_K (x + GELU_A x^3): elementwise.wgsl's gelu_forward
// (see its header for why no tanh, and why sigmoid(2u) is exactly 0 or 1 from |u| = 40 on).
fn gelu(x: f32) -> f32 {
  let u = GELU_K * (x + GELU_A * x * x * x);
  if (!(abs(u) < 40.0)) { return x * select(0.0, 1.0, u >= 0.0); }
  let a = exp(-2.0 * abs(u));
  let r = 1.0 / (1.0 + a);
  return x * select(a * r, r, u >= 0.0);
}

fn store_bias_out3(kind: u32, row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = o.x * Q + c;
        var y = v[e] + in2[c];
        if (kind == EPI_GELU) { y = gelu(y); }
        if (acc) { out3[i] = out3[i] + y; } else { out3[i] = y; }
      }
    }
  }
}

fn store_bias_out4(row0: u32, col0: u32, R: u32, Q: u32, acc: bool, lid: vec3<u32>) {
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = o.x * Q + c;
        let y = in3[i] + (v[e] + in2[c]);
        if (acc) { out4[i] = out4[i] + y; } else { out4[i] = y; }
      }
    }
  }
}

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

// What workgroup `flat` of a split entry computes past its dx tiles (t = flat - dx tiles): part s of
// the dw (K,M) tile at (row0, col0), i.e. the sum over n in k_begin .. k_end - 1 only. The parts of
// a tile are SPLIT chunks of N, each a multiple of TK long (the last one shorter; empty ones, when N
// is small, sum nothing). s == SPLIT: past the last part.
struct SplitTile {
  s: u32,
  row0: u32,
  col0: u32,
  k_begin: u32,
  k_end: u32,
};

fn split_tile(t: u32, parts: u32, rows: u32, cols: u32, I: u32) -> SplitTile {
  let tile_cols = (cols + TN - 1u) / TN;
  let tiles = tile_cols * ((rows + TM - 1u) / TM);
  let s = min(t / tiles, parts);
  let tile = t % tiles;
  let chunk = (((I + parts - 1u) / parts + TK - 1u) / TK) * TK;
  let k_begin = min(I, s * chunk);
  return SplitTile(s, (tile / tile_cols) * TM, (tile % tile_cols) * TN, k_begin, min(I, k_begin + chunk));
}

// Part s of dx (N,K) (t < DX_SPLIT x dx tiles: the sum over m in one chunk of M) and of dw (K,M)
// (t counted from the first dw workgroup).
fn split_dx_tile(t: u32, N: u32, K: u32, M: u32) -> SplitTile { return split_tile(t, DX_SPLIT, N, K, M); }
fn split_dw_tile(t: u32, N: u32, K: u32, M: u32) -> SplitTile { return split_tile(t, SPLIT, K, M, N); }

// A dx part s >= 1 into out3 at base + r * Q + c (base = s * N * K), plain (no epilogue).
fn store_out3_part(row0: u32, col0: u32, R: u32, Q: u32, base: u32, acc: bool, lid: vec3<u32>) {
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = base + o.x * Q + c;
        if (acc) { out3[i] = out3[i] + v[e]; } else { out3[i] = v[e]; }
      }
    }
  }
}

// A dw part s >= 1 into out5 at base + r * Q + c (base = (s - 1) * part_stride), as store_out4.
fn store_part(row0: u32, col0: u32, R: u32, Q: u32, base: u32, acc: bool, lid: vec3<u32>) {
  if (lid.z != 0u) { return; }  // sliced K: group 0 holds the sums
  for (var j = 0u; j < 16u; j++) {
    if (!owned(j)) { continue; }
    let o = result_origin(j / 2u, j % 2u, row0, col0, lid);
    let v = result(j / 2u, j % 2u);
    for (var e = 0u; e < 4u; e++) {
      let c = o.y + e;
      if (o.x < R && c < Q) {
        let i = base + o.x * Q + c;
        if (acc) { out5[i] = out5[i] + v[e]; } else { out5[i] = v[e]; }
      }
    }
  }
}
