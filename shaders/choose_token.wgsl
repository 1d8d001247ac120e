// choose_token.wgsl — the next token from one row of logits, chosen on the GPU so that only the id
// is read back (reference/token_choice.py is the spec; rng.py draws u).
//
// Math (numpy), l = logits[:V] (V,) f32; entries at V and beyond (padding) are never read:
//   choose_token_greedy:  id = argmax(l)                                   ties: the lowest id
//   choose_token_sample:  e    = exp((l - max(l)) / temperature)
//                         keep = l >= kth_largest(l, top_k)                 top_k 0 or >= V: all
//                         keep &= mass(e[keep & (l > v)]) < top_p * sum(e[keep]) for v = l (the max stays)
//                         id   = searchsorted(cumsum(e * keep), u * sum(e * keep), "right")  (id order)
//                         u    = (pcg(key ^ pcg(step)) >> 8) * 2**-24   = rng.sample_uniform(key, step)
//   out[0] = id; out[1] = bitcast<u32>(f32 probability of id in the kept, renormalised distribution),
//   1.0 for greedy. A largest logit that is not finite (all -inf, or +inf) gives the greedy id.
//
// How, without sorting: logits map to u32 keys with the same order (key_of), so a kept set is
// {key >= t} for one threshold t. t is found by searching the key space 4 bits per sweep over the row
// (8 sweeps): each sweep counts, for 16 candidates lo + j * 2^s (j = 0..15), the tokens with key >=
// candidate (and, for top-p, their mass e), and keeps the largest candidate that still satisfies
//   top-k: count >= top_k               top-p: mass >= top_p * (mass of the top-k set), count >= 1
// (both are monotone in the candidate; the float sums are too, as every candidate sums the same
// terms in the same order, adding exact zeros for the others). Top-p searches upward from the top-k
// threshold. The draw: each invocation sums the kept mass of a contiguous chunk of ids, a scan over
// the chunks finds the one where the cumulative mass passes u * total, and that invocation walks it.
// Sweeps over the row: greedy 1; sampling 2, plus 8 for each active filter (top_k, top_p).
// The sums are float32 in another order than the float64 reference: a choice within rounding of a
// boundary (reference/token_choice.decision_margin) can differ; every other choice is the same id.
//
// Bindings (group 0, uniform last): 0 logits (read, >= V f32), 1 out (read_write, 2 u32), 2 params
// Overrides: WG = 256 (invocations; a power of two)
// Grid: (1, 1, 1): one workgroup for the row
// Entry points: choose_token_greedy, choose_token_sample

override WG: u32 = 256u;

struct ChooseParams {
  V: u32,            // the real vocabulary size
  temperature: f32,  // > 0 (choose_token_greedy ignores it)
  top_k: u32,        // keep the top_k largest logits (ties with the k-th too); 0 = all
  top_p: f32,        // nucleus mass in [0, 1]; 1 = all
  key: u32,          // rng.sample_key(seed)
  step: u32,         // which draw of the generation (rng.sample_uniform(key, step))
};

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: ChooseParams;

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> red_a: array<vec4<f32>, WG>;
var<workgroup> red_b: array<vec4<f32>, WG>;
var<workgroup> pick: atomic<u32>;     // the invocation whose chunk holds the draw
var<workgroup> last_nz: atomic<u32>;  // the last invocation with kept mass (rounding fallback)

// PCG output permutation, as in init.wgsl and rng.pcg.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// A u32 with the order of the float: a >= b as floats iff key_of(a) >= key_of(b) (-0 is taken as +0).
fn key_of(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn is_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

struct Best {
  v: f32,
  i: u32,
};

// The largest logit and its lowest id, for the whole workgroup; id 0xffffffff when every logit is
// -inf (or NaN). (The start is the lowest finite f32: a constant -inf is not valid WGSL.)
fn row_argmax(lid: u32) -> Best {
  var bv = bitcast<f32>(0xff7fffffu);
  var bi = 0xffffffffu;
  for (var i = lid; i < p.V; i += WG) {
    let x = logits[i];
    if (x > bv || (x == bv && i < bi)) { bv = x; bi = i; }
  }
  red_v[lid] = bv;
  red_i[lid] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      let ov = red_v[lid + s];
      let oi = red_i[lid + s];
      if (ov > red_v[lid] || (ov == red_v[lid] && oi < red_i[lid])) { red_v[lid] = ov; red_i[lid] = oi; }
    }
    workgroupBarrier();
  }
  let best = Best(red_v[0], red_i[0]);
  workgroupBarrier();
  return best;
}

@compute @workgroup_size(WG)
fn choose_token_greedy(@builtin(local_invocation_index) lid: u32) {
  let best = row_argmax(lid);
  if (lid == 0u) {
    out[0] = select(best.i, 0u, best.i >= p.V);
    out[1] = bitcast<u32>(1.0);
  }
}

struct Pair {
  a: vec4<f32>,
  b: vec4<f32>,
};

fn sum_pair(lid: u32, a: vec4<f32>, b: vec4<f32>) -> Pair {
  red_a[lid] = a;
  red_b[lid] = b;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      red_a[lid] = red_a[lid] + red_a[lid + s];
      red_b[lid] = red_b[lid] + red_b[lid + s];
    }
    workgroupBarrier();
  }
  let total = Pair(red_a[0], red_b[0]);
  workgroupBarrier();
  return total;
}

// Per-invocation counts (c*) and masses (m*) of the tokens with key >= each of the 16 candidates.
struct Acc {
  c0: vec4<f32>, c1: vec4<f32>, c2: vec4<f32>, c3: vec4<f32>,
  m0: vec4<f32>, m1: vec4<f32>, m2: vec4<f32>, m3: vec4<f32>,
};

fn weight(x: f32, m: f32) -> f32 {
  return exp((x - m) / p.temperature);
}

fn add_token(acc: Acc, x: f32, m: f32, use_mass: bool, q0: vec4<u32>, q1: vec4<u32>, q2: vec4<u32>,
             q3: vec4<u32>) -> Acc {
  let k = vec4<u32>(key_of(x));
  let z = vec4<f32>(0.0);
  let one = vec4<f32>(1.0);
  var r = acc;
  r.c0 += select(z, one, k >= q0);
  r.c1 += select(z, one, k >= q1);
  r.c2 += select(z, one, k >= q2);
  r.c3 += select(z, one, k >= q3);
  if (use_mass) {
    let e = vec4<f32>(weight(x, m));
    r.m0 += select(z, e, k >= q0);
    r.m1 += select(z, e, k >= q1);
    r.m2 += select(z, e, k >= q2);
    r.m3 += select(z, e, k >= q3);
  }
  return r;
}

// Element j (0..15) of the 16 values held as (lo.a, lo.b, hi.a, hi.b).
fn pick16(lo: Pair, hi: Pair, j: u32) -> f32 {
  var v: vec4<f32>;
  if (j < 4u) { v = lo.a; } else if (j < 8u) { v = lo.b; } else if (j < 12u) { v = hi.a; } else { v = hi.b; }
  return v[j & 3u];
}

// The result of a search: the threshold key, the count and mass of the tokens at or above it.
struct Level {
  key: u32,
  count: f32,
  mass: f32,
};

// The largest key t >= lo0 with count(key >= t) >= need_count and, when use_mass, mass(key >= t) >=
// mass_frac * mass(key >= lo0), found 4 bits per sweep; the condition holds at lo0 (the caller's
// invariant). Without use_mass (top-k) no weight is computed and the masses are not summed.
fn search(lid: u32, lo0: u32, m: f32, need_count: f32, use_mass: bool, mass_frac: f32) -> Level {
  var lo = lo0;
  var need_mass = 0.0;
  var level = Level(lo0, 0.0, 0.0);
  let steps = vec4<u32>(0u, 1u, 2u, 3u);
  for (var sweep = 0u; sweep < 8u; sweep++) {
    let shift = 28u - 4u * sweep;
    let q0 = vec4<u32>(lo) + (steps << vec4<u32>(shift));
    let q1 = vec4<u32>(lo) + ((steps + 4u) << vec4<u32>(shift));
    let q2 = vec4<u32>(lo) + ((steps + 8u) << vec4<u32>(shift));
    let q3 = vec4<u32>(lo) + ((steps + 12u) << vec4<u32>(shift));
    let z = vec4<f32>(0.0);
    var acc = Acc(z, z, z, z, z, z, z, z);
    // four loads in flight per iteration, then the tail
    var i = lid;
    for (; i + 3u * WG < p.V; i += 4u * WG) {
      let x0 = logits[i];
      let x1 = logits[i + WG];
      let x2 = logits[i + 2u * WG];
      let x3 = logits[i + 3u * WG];
      acc = add_token(acc, x0, m, use_mass, q0, q1, q2, q3);
      acc = add_token(acc, x1, m, use_mass, q0, q1, q2, q3);
      acc = add_token(acc, x2, m, use_mass, q0, q1, q2, q3);
      acc = add_token(acc, x3, m, use_mass, q0, q1, q2, q3);
    }
    for (; i < p.V; i += WG) { acc = add_token(acc, logits[i], m, use_mass, q0, q1, q2, q3); }
    let counts01 = sum_pair(lid, acc.c0, acc.c1);
    let counts23 = sum_pair(lid, acc.c2, acc.c3);
    var mass01 = Pair(z, z);
    var mass23 = Pair(z, z);
    if (use_mass) {
      mass01 = sum_pair(lid, acc.m0, acc.m1);
      mass23 = sum_pair(lid, acc.m2, acc.m3);
    }
    if (sweep == 0u) { need_mass = mass_frac * mass01.a.x; }  // candidate 0 is lo0 itself
    // the largest j whose candidate (and so every smaller one) satisfies the condition
    var best = 0u;
    var alive = true;
    for (var j = 1u; j < 16u; j++) {
      let cnt = pick16(counts01, counts23, j);
      alive = alive && cnt >= need_count && cnt >= 1.0 && pick16(mass01, mass23, j) >= need_mass;
      if (alive) { best = j; }
    }
    lo = lo + (best << shift);
    level = Level(lo, pick16(counts01, counts23, best), pick16(mass01, mass23, best));
  }
  return level;
}

@compute @workgroup_size(WG)
fn choose_token_sample(@builtin(local_invocation_index) lid: u32) {
  let best = row_argmax(lid);
  let m = best.v;
  // 1. the threshold key t: kept = {key >= t}
  var t = 0u;
  if (p.top_k > 0u && p.top_k < p.V) {
    t = search(lid, 0u, m, f32(p.top_k), false, 0.0).key;
  }
  if (p.top_p < 1.0) {
    t = search(lid, t, m, 1.0, true, max(p.top_p, 0.0)).key;
  }
  // 2. kept mass of this invocation's chunk of ids [lid * chunk, (lid + 1) * chunk), then a scan
  let chunk = (p.V + WG - 1u) / WG;
  let start = min(lid * chunk, p.V);
  let stop = min(start + chunk, p.V);
  var own = 0.0;
  for (var i = start; i < stop; i++) {
    let x = logits[i];
    own += select(0.0, weight(x, m), key_of(x) >= t);
  }
  if (lid == 0u) {
    atomicStore(&pick, WG);
    atomicStore(&last_nz, 0u);
  }
  red_v[lid] = own;
  workgroupBarrier();
  for (var off = 1u; off < WG; off = off * 2u) {  // inclusive scan (Hillis-Steele)
    let add = select(0.0, red_v[select(0u, lid - off, lid >= off)], lid >= off);
    workgroupBarrier();
    red_v[lid] += add;
    workgroupBarrier();
  }
  let total = red_v[WG - 1u];
  let u = f32(pcg(p.key ^ pcg(p.step)) >> 8u) * (1.0 / 16777216.0);
  let goal = u * total;
  let before = select(0.0, red_v[select(0u, lid - 1u, lid > 0u)], lid > 0u);
  if (red_v[lid] > goal && before <= goal) { atomicStore(&pick, lid); }  // one invocation at most
  if (own > 0.0) { atomicMax(&last_nz, lid); }
  workgroupBarrier();
  var chosen = atomicLoad(&pick);
  if (chosen == WG) { chosen = atomicLoad(&last_nz); }  // u * total rounded up to total
  // 3. the chosen invocation walks its chunk in id order
  if (lid == chosen) {
    var cum = before;
    var id = 0xffffffffu;
    var last = start;
    var w_id = 0.0;
    var w_last = 0.0;
    for (var i = start; i < stop; i++) {
      let x = logits[i];
      let w = select(0.0, weight(x, m), key_of(x) >= t);
      if (w > 0.0) {
        last = i;
        w_last = w;
        cum += w;
        if (cum > goal) { id = i; w_id = w; break; }
      }
    }
    if (id == 0xffffffffu) { id = last; w_id = w_last; }  // rounding: the chunk's last kept token
    var prob = w_id / total;
    if (best.i >= p.V || !is_finite(m)) {  // all -inf, or a +inf: greedy
      id = select(best.i, 0u, best.i >= p.V);
      prob = 1.0;
    }
    out[0] = id;
    out[1] = bitcast<u32>(prob);
  }
}
