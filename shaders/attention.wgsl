// attention.wgsl — causal multi-head self-attention: forward, backward, and KV-cache decoding
// (reference/ops_attention.py attention_forward / attention_backward; reference/kvcache.py).
//
// Math (numpy, per batch b and head h; q, k, v (T,D) are head h's columns of qkv; scale = 1/sqrt(D)):
//   attention_forward:      S = q @ k.T * scale, S[t, s > t] = -inf;  lse = logsumexp(S, axis=1)
//                           y = exp(S - lse[:, None]) @ v                    -> y (T,D), lse (T,)
//   attention_backward:     delta = (dy * y).sum(axis=1);  P = exp(S - lse[:, None])
//                           dS = P * (dy @ v.T - delta[:, None]);  dq = dS @ k * scale
//                           dk = dS.T @ q * scale;  dv = P.T @ dy
//   attention_decode:       k_cache[h, pos] = k;  v_cache[h, pos] = v      (the new token, batch 1)
//                           y = softmax(q @ k_cache[h, :pos+1].T * scale) @ v_cache[h, :pos+1]
//   attention_kv_fill:      k_cache[h, :T] = k[:, h];  v_cache[h, :T] = v[:, h]  (a batched prefill's
//                           keys and values, batch 1: qkv (T,3C); decode then continues at pos = T)
// Shapes (f32, row-major): qkv, dqkv (B,T,3C) with columns [q | k | v] and head h at h*D:(h+1)*D
//   inside each; y, dy (B,T,C); lse (B,H,T); decode: qkv_row (3C,), y_row (C,),
//   k_cache, v_cache (H,Tmax,D). D = C / H must be a multiple of 4 (rows are read as vec4).
// Flash style: no (T,T) matrix is ever stored. The forward keeps an online softmax (running max m
// and sum l per query row) over key tiles; the backward recomputes P from q, k and lse tile by tile.
// attention_backward OVERWRITES all of dqkv in one dispatch: its query-tile workgroups write the q
// columns, its key-tile workgroups the k and v columns; each computes the delta it needs itself
// (the same sum in the same order), so the two kinds of workgroup do not depend on each other.
//
// Bindings (group 0, uniform last):
//   attention_forward:      0 qkv (read), 1 y (read_write), 2 lse (read_write), 3 params
//   attention_backward:     0 dy (read), 1 qkv (read), 2 y (read), 3 lse (read),
//                           4 dqkv (read_write), 5 params
//   attention_decode:       0 qkv_row (read), 1 k_cache (read_write), 2 v_cache (read_write),
//                           3 y_row (read_write), 4 params (DecodeParams)
//   attention_kv_fill:      0 qkv (read), 1 k_cache (read_write), 2 v_cache (read_write), 3 params
//                           (KvFillParams)
// Overrides: D = 64 head width (a multiple of 4, at most 64);
//            BQ = 8 query rows (and keys) per tile, with BQ <= 16 and BQ * D/4 <= 128
//            (gpu/attention_ops.py picks BQ = min(16, 128 // (D/4))).
// Workgroups: forward/backward are (D/4, BQ) invocations: invocation (c, r) owns vec4 column c of
//   tile row r. decode is DEC_WG = 64 invocations.
// Grid: forward: (ceil(T/BQ), H, B), one workgroup per query tile of one (b, h);
//       backward: (2 * ceil(T/BQ), H, B): x < ceil(T/BQ) a query tile (dq), else a KEY tile (dk, dv);
//       decode: (H, 1, 1); kv_fill: one invocation per vec4 of k, DEC_WG each: grid_1d(T * C / 4, 64).
// Entry points: attention_forward, attention_backward, attention_decode, attention_kv_fill
//
// Speed notes: every per-invocation accumulator is a single vec4 (no function-scope arrays, which
// naga compiles to slow code when indexed dynamically); the q, k, v, dy tiles live in workgroup
// memory (4 * 2 KiB at most), scores in 2 * 1 KiB (+ 1 KiB of delta shares in the backward), so every
// entry fits WebGPU's default 16 KiB.

override D: u32 = 64u;
override BQ: u32 = 8u;

// vec4 slots of one row tile (BQ * D/4 <= 128). An override expression, not the 128 maximum: Dawn
// zero-fills workgroup memory in every shader and SwiftShader compiles that fill at about 2 ms per
// vec4 (nano's D = 4, BQ = 16 tiles need 16 vec4 each, not 128).
override TILE_VEC4: u32 = BQ * (D / 4u);
const MAX_BQ: u32 = 16u;
const DEC_WG: u32 = 64u;      // decode: invocations per workgroup = keys per tile
const NEG_BIG: f32 = -3.0e38; // "minus infinity" for masked scores (exp underflows to exactly 0)

struct AttentionParams {
  B: u32,
  T: u32,
  C: u32,
  H: u32,
};

struct DecodeParams {
  C: u32,
  H: u32,
  Tmax: u32,
  pos: u32,  // position of the new token: 0 <= pos < Tmax
};

struct KvFillParams {
  T: u32,     // positions 0 .. T-1 to write (T <= Tmax)
  C: u32,
  H: u32,
  Tmax: u32,
};

// attention_forward
@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(3) var<uniform> p3: AttentionParams;
// attention_backward (qkv at binding 1)
@group(0) @binding(0) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> qkv1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> y_in: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> lse_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> dqkv4: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> p5: AttentionParams;
// attention_decode (qkv_row at binding 0 is `qkv` above)
@group(0) @binding(1) var<storage, read_write> k_cache: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y_row: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> pd: DecodeParams;
@group(0) @binding(3) var<uniform> pf: KvFillParams;  // attention_kv_fill (qkv, k_cache, v_cache as above)

var<workgroup> q_sh: array<vec4<f32>, TILE_VEC4>;   // [row * D4 + c]  query rows (q * scale)
var<workgroup> k_sh: array<vec4<f32>, TILE_VEC4>;   // [key * D4 + c]
var<workgroup> v_sh: array<vec4<f32>, TILE_VEC4>;   // [key * D4 + c]
var<workgroup> dy_sh: array<vec4<f32>, TILE_VEC4>;  // [row * D4 + c]
var<workgroup> s_sh: array<f32, 256>;               // MAX_BQ x MAX_BQ scores / dS (row-major)
var<workgroup> p_sh: array<f32, 256>;               // MAX_BQ x MAX_BQ probabilities
var<workgroup> part_sh: array<f32, 256>;            // backward: MAX_BQ x MAX_BQ column shares of delta
var<workgroup> lse_sh: array<f32, MAX_BQ>;          // backward_dkv: lse of the query rows
var<workgroup> acc_sh: array<vec4<f32>, DEC_WG>;    // decode: partial outputs of each key group
var<workgroup> l_sh: array<f32, DEC_WG>;            // decode: partial softmax sums

// Dot product of two D-wide rows held as D/4 vec4s in workgroup memory.
fn dot_q_k(qi: u32, kj: u32, D4: u32) -> f32 {
  var acc = vec4<f32>(0.0);
  for (var i = 0u; i < D4; i++) { acc += q_sh[qi + i] * k_sh[kj + i]; }
  return dot(acc, vec4<f32>(1.0));
}

fn dot_dy_v(di: u32, vj: u32, D4: u32) -> f32 {
  var acc = vec4<f32>(0.0);
  for (var i = 0u; i < D4; i++) { acc += dy_sh[di + i] * v_sh[vj + i]; }
  return dot(acc, vec4<f32>(1.0));
}

// Index of vec4 column `col4` (counted in vec4s) of row (b, t) in a (B,T,width4*4) tensor.
fn row_vec4(b: u32, t: u32, T: u32, width4: u32, col4: u32) -> u32 {
  return (b * T + t) * width4 + col4;
}

@compute @workgroup_size(D / 4u, BQ)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let D4 = D / 4u;
  let T = p3.T;
  let C4 = p3.C / 4u;
  let h = wid.y;
  let b = wid.z;
  let c = lid.x;                 // my vec4 column inside the head
  let r = lid.y;                 // my query row inside the tile
  let t0 = wid.x * BQ;
  let t = t0 + r;
  let row_ok = t < T;
  let col = h * D4 + c;
  let scale = inverseSqrt(f32(D));
  var q = vec4<f32>(0.0);
  if (row_ok) { q = qkv[row_vec4(b, t, T, 3u * C4, col)] * scale; }
  q_sh[r * D4 + c] = q;

  var acc = vec4<f32>(0.0);  // sum over keys of p * v, in units of exp(-m)
  var m = NEG_BIG;           // running max of the row's scores
  var l = 0.0;               // running sum of exp(score - m)
  let n_keys = min(T, t0 + BQ);  // causal: this tile needs keys 0 .. n_keys-1 (uniform)
  for (var s0 = 0u; s0 < n_keys; s0 += BQ) {
    workgroupBarrier();  // the previous tile's k_sh, v_sh, p_sh reads are done
    let key = s0 + r;    // invocation (c, r) loads column c of key row r of the tile
    var kv = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    if (key < T) {
      kv = qkv[row_vec4(b, key, T, 3u * C4, C4 + col)];
      vv = qkv[row_vec4(b, key, T, 3u * C4, 2u * C4 + col)];
    }
    k_sh[r * D4 + c] = kv;
    v_sh[r * D4 + c] = vv;
    workgroupBarrier();
    // Scores of row r: invocation c computes keys j = c, c + D4, ... of the tile.
    for (var j = c; j < BQ; j += D4) {
      var s = NEG_BIG;
      if (s0 + j <= t) { s = dot_q_k(r * D4, j * D4, D4); }  // keys > t (or >= T > t) masked
      s_sh[r * MAX_BQ + j] = s;
    }
    workgroupBarrier();
    var tile_max = NEG_BIG;
    for (var j = 0u; j < BQ; j++) { tile_max = max(tile_max, s_sh[r * MAX_BQ + j]); }
    let m_new = max(m, tile_max);  // finite: every tile visited holds key s0 <= t
    for (var j = c; j < BQ; j += D4) {
      p_sh[r * MAX_BQ + j] = exp(s_sh[r * MAX_BQ + j] - m_new);  // masked: exp(-3e38) == 0
    }
    workgroupBarrier();
    let alpha = exp(m - m_new);
    var tile_acc = vec4<f32>(0.0);
    var tile_l = 0.0;
    for (var j = 0u; j < BQ; j++) {
      let p = p_sh[r * MAX_BQ + j];
      tile_acc += p * v_sh[j * D4 + c];
      tile_l += p;
    }
    acc = acc * alpha + tile_acc;
    l = l * alpha + tile_l;
    m = m_new;
  }
  if (!row_ok) { return; }
  y_out[row_vec4(b, t, T, C4, col)] = acc / l;
  if (c == 0u) { lse_out[(b * p3.H + h) * T + t] = m + log(l); }
}

// Query tile `tile` of (b, h): dq (q columns of dqkv) of its BQ rows.
fn backward_dq(tile: u32, h: u32, b: u32, lid: vec3<u32>) {
  let D4 = D / 4u;
  let T = p5.T;
  let C4 = p5.C / 4u;
  let c = lid.x;
  let r = lid.y;
  let t = tile * BQ + r;
  let row_ok = t < T;
  let col = h * D4 + c;
  let scale = inverseSqrt(f32(D));
  var q = vec4<f32>(0.0);
  var g = vec4<f32>(0.0);
  var lse = 0.0;
  var part = 0.0;  // my column's share of delta = rowsum(dy * y)
  if (row_ok) {
    q = qkv1[row_vec4(b, t, T, 3u * C4, col)] * scale;
    g = dy[row_vec4(b, t, T, C4, col)];
    part = dot(g, y_in[row_vec4(b, t, T, C4, col)]);
    lse = lse_in[(b * p5.H + h) * T + t];
  }
  q_sh[r * D4 + c] = q;
  dy_sh[r * D4 + c] = g;
  part_sh[r * MAX_BQ + c] = part;  // D4 <= 16 == MAX_BQ slots per row
  workgroupBarrier();
  let delta = row_delta(r, D4);

  var acc = vec4<f32>(0.0);  // dq column c of row t
  let n_keys = min(T, tile * BQ + BQ);
  for (var s0 = 0u; s0 < n_keys; s0 += BQ) {
    workgroupBarrier();  // the previous dS and k_sh reads are done
    let key = s0 + r;
    var kv = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    if (key < T) {
      kv = qkv1[row_vec4(b, key, T, 3u * C4, C4 + col)];
      vv = qkv1[row_vec4(b, key, T, 3u * C4, 2u * C4 + col)];
    }
    k_sh[r * D4 + c] = kv;
    v_sh[r * D4 + c] = vv;
    workgroupBarrier();
    for (var j = c; j < BQ; j += D4) {
      var ds = 0.0;
      if (row_ok && s0 + j <= t) {
        let p = exp(dot_q_k(r * D4, j * D4, D4) - lse);
        ds = p * (dot_dy_v(r * D4, j * D4, D4) - delta);
      }
      s_sh[r * MAX_BQ + j] = ds * scale;
    }
    workgroupBarrier();
    for (var j = 0u; j < BQ; j++) { acc += s_sh[r * MAX_BQ + j] * k_sh[j * D4 + c]; }
  }
  if (row_ok) { dqkv4[row_vec4(b, t, T, 3u * C4, col)] = acc; }
}

// delta of tile row i from its D4 column shares in part_sh (one fixed order: both halves of
// attention_backward get the same value).
fn row_delta(i: u32, D4: u32) -> f32 {
  var delta = 0.0;
  for (var k = 0u; k < D4; k++) { delta += part_sh[i * MAX_BQ + k]; }
  return delta;
}

// Key tile `tile` of (b, h): dk and dv (k and v columns of dqkv) of its BQ keys.
fn backward_dkv(tile: u32, h: u32, b: u32, lid: vec3<u32>) {
  let D4 = D / 4u;
  let T = p5.T;
  let C4 = p5.C / 4u;
  let c = lid.x;
  let r = lid.y;                  // my key row inside the tile
  let s0 = tile * BQ;
  let key = s0 + r;
  let key_ok = key < T;
  let col = h * D4 + c;
  var kv = vec4<f32>(0.0);
  var vv = vec4<f32>(0.0);
  if (key_ok) {
    kv = qkv1[row_vec4(b, key, T, 3u * C4, C4 + col)];
    vv = qkv1[row_vec4(b, key, T, 3u * C4, 2u * C4 + col)];
  }
  k_sh[r * D4 + c] = kv;
  v_sh[r * D4 + c] = vv;

  var dk = vec4<f32>(0.0);
  var dv = vec4<f32>(0.0);
  // causal: only queries t >= s0 see this tile's keys
  for (var t0 = s0; t0 < T; t0 += BQ) {
    workgroupBarrier();  // the previous tile's q_sh, dy_sh, part_sh, s_sh, p_sh reads are done
    let t = t0 + r;      // invocation (c, r) loads column c of query row r of the tile
    var q = vec4<f32>(0.0);
    var g = vec4<f32>(0.0);
    var part = 0.0;      // as in backward_dq: delta is recomputed here, not passed between halves
    if (t < T) {
      q = qkv1[row_vec4(b, t, T, 3u * C4, col)] * inverseSqrt(f32(D));
      g = dy[row_vec4(b, t, T, C4, col)];
      part = dot(g, y_in[row_vec4(b, t, T, C4, col)]);
      if (c == 0u) { lse_sh[r] = lse_in[(b * p5.H + h) * T + t]; }
    }
    q_sh[r * D4 + c] = q;
    dy_sh[r * D4 + c] = g;
    part_sh[r * MAX_BQ + c] = part;
    workgroupBarrier();
    // Entries (query i, my key r) for i = c, c + D4, ...; stored transposed: [key * MAX_BQ + i].
    for (var i = c; i < BQ; i += D4) {
      var p = 0.0;
      var ds = 0.0;
      if (key <= t0 + i && t0 + i < T) {
        p = exp(dot_q_k(i * D4, r * D4, D4) - lse_sh[i]);
        ds = p * (dot_dy_v(i * D4, r * D4, D4) - row_delta(i, D4));
      }
      p_sh[r * MAX_BQ + i] = p;
      s_sh[r * MAX_BQ + i] = ds;
    }
    workgroupBarrier();
    for (var i = 0u; i < BQ; i++) {
      dv += p_sh[r * MAX_BQ + i] * dy_sh[i * D4 + c];
      dk += s_sh[r * MAX_BQ + i] * q_sh[i * D4 + c];  // q_sh holds q * scale: dk = dS.T @ q * scale
    }
  }
  if (!key_ok) { return; }
  dqkv4[row_vec4(b, key, T, 3u * C4, C4 + col)] = dk;
  dqkv4[row_vec4(b, key, T, 3u * C4, 2u * C4 + col)] = dv;
}

// dq and dk, dv in ONE dispatch: workgroups x < ceil(T / BQ) take query tiles (dq), the rest key
// tiles (dk, dv). The halves share nothing (each computes delta itself), so they need no order.
@compute @workgroup_size(D / 4u, BQ)
fn attention_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tiles = (p5.T + BQ - 1u) / BQ;
  if (wid.x < tiles) {
    backward_dq(wid.x, wid.y, wid.z, lid);
  } else {
    backward_dkv(wid.x - tiles, wid.y, wid.z, lid);
  }
}

// KV-cache decode for one new token at position pos (batch 1), one workgroup per head.
// Keys are taken in tiles of DEC_WG: invocation j scores key s0 + j; then invocation
// (group g = lid / D4, column c = lid % D4) accumulates p * v over the tile's keys j = g (mod G).
// The new token's k, v are read from qkv_row (not from the cache this dispatch writes).
@compute @workgroup_size(DEC_WG)
fn attention_decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let D4 = D / 4u;
  let C4 = pd.C / 4u;
  let h = wid.x;
  let pos = pd.pos;
  let col = h * D4;                  // first vec4 column of head h
  let cache = h * pd.Tmax * D4;      // first vec4 of head h in the caches
  let valid = h < pd.H && pos < pd.Tmax;
  if (valid && lid < D4) {
    q_sh[lid] = qkv[col + lid] * inverseSqrt(f32(D));
    k_cache[cache + pos * D4 + lid] = qkv[C4 + col + lid];
    v_cache[cache + pos * D4 + lid] = qkv[2u * C4 + col + lid];
  }
  let G = DEC_WG / D4;               // key groups
  let g = lid / D4;
  let c = lid % D4;
  var acc = vec4<f32>(0.0);
  var l = 0.0;
  var m = NEG_BIG;
  let n_keys = select(0u, pos + 1u, valid);
  for (var s0 = 0u; s0 < n_keys; s0 += DEC_WG) {
    workgroupBarrier();  // q_sh written; the previous tile's s_sh, p_sh reads are done
    let key = s0 + lid;
    var s = NEG_BIG;
    if (key < n_keys) {
      var a = vec4<f32>(0.0);
      for (var i = 0u; i < D4; i++) {
        var kv: vec4<f32>;
        if (key == pos) { kv = qkv[C4 + col + i]; } else { kv = k_cache[cache + key * D4 + i]; }
        a += q_sh[i] * kv;
      }
      s = dot(a, vec4<f32>(1.0));
    }
    s_sh[lid] = s;
    workgroupBarrier();
    var tile_max = NEG_BIG;
    for (var j = 0u; j < DEC_WG; j++) { tile_max = max(tile_max, s_sh[j]); }
    let m_new = max(m, tile_max);
    p_sh[lid] = exp(s - m_new);
    workgroupBarrier();
    let alpha = exp(m - m_new);
    acc *= alpha;
    l *= alpha;
    if (g < G) {
      for (var j = g; j < DEC_WG && s0 + j < n_keys; j += G) {
        let key_j = s0 + j;
        var vv: vec4<f32>;
        if (key_j == pos) { vv = qkv[2u * C4 + col + c]; } else { vv = v_cache[cache + key_j * D4 + c]; }
        acc += p_sh[j] * vv;
        l += p_sh[j];
      }
    }
    m = m_new;
  }
  // Combine the G groups' partial sums (all share the same running max m).
  acc_sh[lid] = acc;
  l_sh[lid] = l;
  workgroupBarrier();
  if (!valid || lid >= D4) { return; }
  var total = vec4<f32>(0.0);
  var l_total = 0.0;
  for (var k = 0u; k < G; k++) {
    total += acc_sh[k * D4 + lid];
    l_total += l_sh[k * D4 + lid];
  }
  y_row[col + lid] = total / l_total;
}

// The keys and values of a whole prompt into the caches at once (the batched prefill; batch 1):
// invocation e copies vec4 column cc = e % (C/4) of position t = e / (C/4), in head h = cc / (D/4).
@compute @workgroup_size(DEC_WG)
fn attention_kv_fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let D4 = D / 4u;
  let C4 = pf.C / 4u;
  let e = (wid.y * nwg.x + wid.x) * DEC_WG + lid;
  if (e >= pf.T * C4 || pf.T > pf.Tmax) { return; }
  let t = e / C4;
  let cc = e % C4;
  let dst = (cc / D4) * pf.Tmax * D4 + t * D4 + cc % D4;
  k_cache[dst] = qkv[t * 3u * C4 + C4 + cc];
  v_cache[dst] = qkv[t * 3u * C4 + 2u * C4 + cc];
}
