// attention_rows_backward.wgsl — the causal attention backward for wide heads (made for D = 32 .. 64,
// correct for any D), one row per invocation with its row data in registers (FlashAttention-2
// style); the same math, bindings and uniform as attention.wgsl's attention_backward
// (reference/ops_attention.py attention_backward), which it replaces where gpu/attention_ops.py
// picks the "rows" kernels.
//
// Math (numpy, per batch b and head h; q, k, v (T,D) are head h's columns of qkv; scale = 1/sqrt(D)):
//   S = q @ k.T * scale, S[t, s > t] = -inf;  P = exp(S - lse[:, None])    (lse from the forward)
//   delta = (dy * y).sum(axis=1);  dS = P * (dy @ v.T - delta[:, None])
//   dq = dS @ k * scale;  dk = dS.T @ q * scale;  dv = P.T @ dy
// Shapes (f32, row-major): qkv, dqkv (B,T,3C) with columns [q | k | v] and head h at h*D:(h+1)*D
//   inside each; y, dy (B,T,C); lse (B,H,T). D = C / H, a multiple of 4 (rows are read as vec4).
// It OVERWRITES all of dqkv in one dispatch with two kinds of workgroup that share nothing:
//   dq workgroups: ROWS invocations, invocation r owns query row t = tile * ROWS + r: its q * scale,
//     dy row g and accumulator dq (D/4 vec4 each) in registers, lse[t] and delta[t]. Key tiles of KT
//     keys (k, v) are loaded into workgroup memory; for each key j <= t:
//       s = q.k_j;  p = exp(s - lse);  ds = p * (g.v_j - delta);  dq += ds * k_j;  stores dq * scale.
//   dk/dv workgroups: KEYS = ROWS / SPLIT key rows, each split over SPLIT invocations (key j =
//     lid / SPLIT, part = lid % SPLIT) that hold CW vec4 columns each of k_j, v_j, dk_j, dv_j.
//     Query tiles of QT queries t >= the workgroup's first key (q * scale, dy, lse, delta) are
//     loaded into workgroup memory; every part computes its partial dots q_t.k_j and dy_t.v_j,
//     shares them through workgroup memory, and sums the SPLIT partials in ONE fixed order (all
//     parts get identical s and dp); then for t >= j:
//       p = exp(s - lse_t);  ds = p * (dp - delta_t);  dv += p * dy_t;  dk += ds * q_t  (its columns).
//   Both kinds compute delta with the same function (row_delta: the same sum in the same order),
//   so they need no order between them.
//
// Bindings (group 0, uniform last): 0 dy (read), 1 qkv (read), 2 y (read), 3 lse (read),
//   4 dqkv (read_write), 5 params (AttentionParams {B, T, C, H})
// Overrides: D = 64 head width (a multiple of 4, at most 64);
//            ROWS = 64 invocations per workgroup = query rows of a dq workgroup (and KEYS * SPLIT);
//            KT = 16 keys per tile (dq workgroups);  QT = 8 queries per tile (dk/dv workgroups, at most 16).
//   Derived (callers never set them): D4 = D/4; SPLIT = ceil(D4 / 8) invocations per key row (2 at
//   D > 32, else 1); CW = ceil(D4 / SPLIT) vec4 columns per part (the last part's columns past D4
//   are zeros); KEYS = ROWS / SPLIT.
// Grid: (ceil(T/ROWS) + ceil(T/KEYS), H, B): x < ceil(T/ROWS) a dq workgroup, else a dk/dv one.
//   Both kinds are numbered heaviest first (the dq tile with the most keys, the key tile with the
//   most queries) so the long workgroups start first.
// Entry point: attention_rows_backward
//
// Speed notes. attention_backward (one vec4 column per invocation) reads both sides of every score's
// dot product from workgroup memory (2 loads per vec4 FMA, bank conflicts) and pays 3-4 barriers
// per 8-key tile. Here a dq invocation keeps its row in registers: per key it reads k_j and v_j
// (D/4 vec4 each) from workgroup memory as broadcasts (every invocation reads the same address,
// no conflicts) for 3 * D/4 vec4 FMAs, and a KT = 16 key tile costs 2 barriers. A dk/dv invocation
// holds 4 * CW vec4 (32 vec4 = 128 registers at D = 64: a full row of k, v, dk, dv would be 64);
// per 8-query tile it does 4 * CW vec4 FMAs per query for 3 barriers, its q/dy reads broadcast
// within a part. The row arrays are function-scope `array<vec4<f32>, 16>` indexed only by loops
// with override bounds (D4, CW), which the drivers unroll into registers. Masked keys are skipped
// by branches (no barrier inside), so on the diagonal a SIMD group whose rows all precede a key
// (dq) or whose keys all follow a query (dk/dv) does no work for it. Caveat: the two kinds share
// one pipeline, so both get the register allocation of the larger (the dq rows: 3 * D/4 vec4 =
// 192 registers at D = 64), which bounds the workgroups resident per multiprocessor.
// Workgroup memory (one entry, both kinds: tile_a / tile_b are k / v tiles in dq workgroups and
// q / dy tiles in dk/dv ones): 2 * max(KT, QT) * D4 vec4 + QT * ROWS vec2 (only when SPLIT > 1)
// + QT vec2 = 12.1 KiB at D = 64 with the defaults (4.1 KiB at D = 32): within WebGPU's default
// 16 KiB (the test compiles it under Tint with that limit). Sized by override expressions, not
// maxima: Dawn zero-fills workgroup memory and SwiftShader compiles that fill per vec4.

override D: u32 = 64u;
override ROWS: u32 = 64u;  // invocations per workgroup; query rows of a dq workgroup
override KT: u32 = 16u;    // keys per workgroup-memory tile (dq workgroups)
override QT: u32 = 8u;     // queries per workgroup-memory tile (dk/dv workgroups)
// Derived (overrides only because workgroup array sizes must be override expressions).
override D4: u32 = D / 4u;                          // vec4 columns of a head row
override SPLIT: u32 = (D4 + 7u) / 8u;               // invocations per key row (dk/dv)
override CW: u32 = (D4 + SPLIT - 1u) / SPLIT;       // vec4 columns per part (<= 8)
override KEYS: u32 = ROWS / SPLIT;                  // key rows of a dk/dv workgroup
override TILE4: u32 = max(KT, QT) * D4;             // vec4 slots of one row tile
override PART2: u32 = select(1u, QT * ROWS, SPLIT > 1u);  // vec2 slots of the partial dots (unused unsplit)

const MAX_D4: u32 = 16u;  // D <= 64: the register row arrays' length
const MAX_QT: u32 = 16u;  // QT <= 16: the (s, dp) register array's length

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

var<workgroup> tile_a: array<vec4<f32>, TILE4>;   // dq: k [key * D4 + c];  dk/dv: q * scale [query * D4 + c]
var<workgroup> tile_b: array<vec4<f32>, TILE4>;   // dq: v tile [key * D4 + c];  dk/dv: dy [query * D4 + c]
var<workgroup> part_sh: array<vec2<f32>, PART2>;  // dk/dv: (q.k, dy.v) partials [query * ROWS + lid]
var<workgroup> stat_sh: array<vec2<f32>, QT>;     // dk/dv: (lse, delta) of each tile query

// Index of vec4 column `col4` (counted in vec4s) of row (b, t) in a (B,T,width4*4) tensor.
fn row_vec4(b: u32, t: u32, T: u32, width4: u32, col4: u32) -> u32 {
  return (b * T + t) * width4 + col4;
}

// delta[t] = sum(dy[t] * y[t]) over head h's D columns (first vec4 column col0 of the (B,T,C) rows).
// Both kinds of workgroup call this: the same sum in the same order gives them the same value.
fn row_delta(b: u32, t: u32, T: u32, C4: u32, col0: u32) -> f32 {
  var acc = vec4<f32>(0.0);
  for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
    let at = row_vec4(b, t, T, C4, col0 + i);
    acc += dy[at] * y_in[at];
  }
  return dot(acc, vec4<f32>(1.0));
}

// dq workgroup `tile`: query rows tile * ROWS .. + ROWS of (b, h).
fn backward_dq(tile: u32, h: u32, b: u32, lid: u32) {
  let T = params.T;
  let C4 = params.C / 4u;
  let W4 = 3u * C4;               // vec4 per qkv row
  let col0 = h * D4;              // head h's first vec4 column inside q (and k, v, y, dy)
  let t = tile * ROWS + lid;
  let row_ok = t < T;
  let scale = inverseSqrt(f32(D));
  var q: array<vec4<f32>, MAX_D4>;   // q * scale of row t (D4 used)
  var g: array<vec4<f32>, MAX_D4>;   // dy of row t
  var dq: array<vec4<f32>, MAX_D4>;  // sum over keys of ds * k
  var lse = 0.0;
  var delta = 0.0;
  for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
    q[i] = vec4<f32>(0.0);
    g[i] = vec4<f32>(0.0);
    dq[i] = vec4<f32>(0.0);
  }
  if (row_ok) {
    for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
      q[i] = qkv[row_vec4(b, t, T, W4, col0 + i)] * scale;
      g[i] = dy[row_vec4(b, t, T, C4, col0 + i)];
    }
    lse = lse_in[(b * params.H + h) * T + t];
    delta = row_delta(b, t, T, C4, col0);
  }

  let n_keys = min(T, tile * ROWS + ROWS);  // causal: keys 0 .. n_keys-1 (uniform)
  for (var s0 = 0u; s0 < n_keys; s0 += KT) {
    workgroupBarrier();  // the previous tile's reads are done
    for (var idx = lid; idx < KT * D4; idx += ROWS) {  // cooperative load of k, v rows s0 ..
      let key = s0 + idx / D4;
      let c = idx % D4;
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (key < T) {
        kv = qkv[row_vec4(b, key, T, W4, C4 + col0 + c)];
        vv = qkv[row_vec4(b, key, T, W4, 2u * C4 + col0 + c)];
      }
      tile_a[idx] = kv;
      tile_b[idx] = vv;
    }
    workgroupBarrier();
    for (var j = 0u; j < KT; j++) {
      // causal mask (keys > t, also every key past T > t). A branch, not a select: a SIMD group
      // whose rows all precede the key (the diagonal tiles) skips it.
      if (s0 + j <= t) {
        var sv = vec4<f32>(0.0);
        var dpv = vec4<f32>(0.0);
        for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; }
          sv += q[i] * tile_a[j * D4 + i];
          dpv += g[i] * tile_b[j * D4 + i];
        }
        let p = exp(dot(sv, vec4<f32>(1.0)) - lse);
        let ds = p * (dot(dpv, vec4<f32>(1.0)) - delta);
        for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; } dq[i] += ds * tile_a[j * D4 + i]; }
      }
    }
  }
  if (!row_ok) { return; }
  for (var i = 0u; i < MAX_D4; i++) { if (i >= D4) { break; } dqkv[row_vec4(b, t, T, W4, col0 + i)] = dq[i] * scale; }
}

// dk/dv workgroup `tile`: key rows tile * KEYS .. + KEYS of (b, h).
fn backward_dkv(tile: u32, h: u32, b: u32, lid: u32) {
  let T = params.T;
  let C4 = params.C / 4u;
  let W4 = 3u * C4;
  let col0 = h * D4;
  let s0 = tile * KEYS;            // the workgroup's first key
  let key = s0 + lid / SPLIT;      // my key row (lid >= KEYS * SPLIT: an idle lane, key_ok false)
  let part = lid % SPLIT;
  let c0 = part * CW;              // my first vec4 column inside the head row
  let key_ok = key < T && lid < KEYS * SPLIT;
  let scale = inverseSqrt(f32(D));
  var k: array<vec4<f32>, MAX_D4>;   // my CW columns of k_j (zeros past D4)
  var v: array<vec4<f32>, MAX_D4>;
  var dk: array<vec4<f32>, MAX_D4>;
  var dv: array<vec4<f32>, MAX_D4>;
  for (var i = 0u; i < MAX_D4; i++) { if (i >= CW) { break; }
    let c = c0 + i;
    k[i] = vec4<f32>(0.0);
    v[i] = vec4<f32>(0.0);
    dk[i] = vec4<f32>(0.0);
    dv[i] = vec4<f32>(0.0);
    if (key_ok && c < D4) {
      k[i] = qkv[row_vec4(b, key, T, W4, C4 + col0 + c)];
      v[i] = qkv[row_vec4(b, key, T, W4, 2u * C4 + col0 + c)];
    }
  }

  for (var t0 = s0; t0 < T; t0 += QT) {  // causal: only queries t >= s0 see these keys
    workgroupBarrier();  // the previous tile's reads of tile_a, tile_b, part_sh, stat_sh are done
    for (var idx = lid; idx < QT * D4; idx += ROWS) {  // cooperative load of q * scale, dy rows t0 ..
      let t = t0 + idx / D4;
      let c = idx % D4;
      var qv = vec4<f32>(0.0);
      var gv = vec4<f32>(0.0);
      if (t < T) {
        qv = qkv[row_vec4(b, t, T, W4, col0 + c)] * scale;
        gv = dy[row_vec4(b, t, T, C4, col0 + c)];
      }
      tile_a[idx] = qv;
      tile_b[idx] = gv;
    }
    if (lid < QT) {
      let t = t0 + lid;
      var st = vec2<f32>(0.0);  // rows past T: zeros (their p is masked to 0 below)
      if (t < T) { st = vec2<f32>(lse_in[(b * params.H + h) * T + t], row_delta(b, t, T, C4, col0)); }
      stat_sh[lid] = st;
    }
    workgroupBarrier();
    // (s, dp) of each tile query against my key: my partial dots over my CW columns (a column
    // index past D4 reads a clamped slot times k = 0), summed over the SPLIT parts when split.
    var sd: array<vec2<f32>, MAX_QT>;
    for (var i = 0u; i < MAX_QT; i++) { if (i >= QT) { break; }
      var sv = vec4<f32>(0.0);
      var dpv = vec4<f32>(0.0);
      for (var j = 0u; j < CW; j++) {
        let at = i * D4 + min(c0 + j, D4 - 1u);
        sv += tile_a[at] * k[j];
        dpv += tile_b[at] * v[j];
      }
      sd[i] = vec2<f32>(dot(sv, vec4<f32>(1.0)), dot(dpv, vec4<f32>(1.0)));
    }
    if (SPLIT > 1u) {
      for (var i = 0u; i < MAX_QT; i++) { if (i >= QT) { break; } part_sh[i * ROWS + lid] = sd[i]; }
      workgroupBarrier();
      let first = (lid / SPLIT) * SPLIT;  // lane of part 0 of my key
      for (var i = 0u; i < MAX_QT; i++) { if (i >= QT) { break; }
        var total = vec2<f32>(0.0);
        for (var p = 0u; p < SPLIT; p++) { total += part_sh[i * ROWS + first + p]; }  // one fixed order
        sd[i] = total;
      }
    }
    for (var i = 0u; i < MAX_QT; i++) { if (i >= QT) { break; }
      let t = t0 + i;
      if (key <= t && t < T) {  // causal mask, rows past T; a branch: SIMD groups of later keys skip
        let st = stat_sh[i];    // (lse, delta) of query t
        let p = exp(sd[i].x - st.x);
        let ds = p * (sd[i].y - st.y);
        for (var j = 0u; j < CW; j++) {
          let at = i * D4 + min(c0 + j, D4 - 1u);  // columns past D4 are never stored
          dv[j] += p * tile_b[at];
          dk[j] += ds * tile_a[at];                // tile_a holds q * scale: dk = dS.T @ q * scale
        }
      }
    }
  }
  if (!key_ok) { return; }
  for (var i = 0u; i < MAX_D4; i++) { if (i >= CW) { break; }
    let c = c0 + i;
    if (c < D4) {
      dqkv[row_vec4(b, key, T, W4, C4 + col0 + c)] = dk[i];
      dqkv[row_vec4(b, key, T, W4, 2u * C4 + col0 + c)] = dv[i];
    }
  }
}

// dq and dk, dv in ONE dispatch: workgroups x < ceil(T / ROWS) do dq (the last query tile first),
// the rest dk, dv (key tile 0, which sees every query, first).
@compute @workgroup_size(ROWS)
fn attention_rows_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let q_tiles = (params.T + ROWS - 1u) / ROWS;
  if (wid.x < q_tiles) {
    backward_dq(q_tiles - 1u - wid.x, wid.y, wid.z, lid);
  } else {
    backward_dkv(wid.x - q_tiles, wid.y, wid.z, lid);
  }
}
