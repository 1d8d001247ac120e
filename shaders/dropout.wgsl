// dropout.wgsl — inverted dropout with a counter-based mask (reference/dropout.py, rng.py).
//
// Math (numpy):
//   keep        = pcg(keys[site] ^ pcg(i)) >= threshold      i = flat element index, u32 wrap
//   dropout:     y = x * scale * keep                         forward, and the backward on dy
//   dropout_add: y = res + x * scale * keep                   a residual branch joining the stream
// keys[site] = rng.dropout_key(seed, step, site), written by the host once per step for every site
// (one small buffer, so the per-dispatch uniform never changes); threshold = rng.dropout_threshold(p),
// scale = rng.dropout_scale(p) = f32(1 / (1 - p)). The mask is never stored: the backward pass
// recomputes it from the same (key, i).
// Layout: flat f32 arrays of n elements (an (N,C) activation, row-major); keys (2L+1,) u32.
// Bindings (group 0, uniform last; the entries share binding numbers with different roles):
//   dropout:     0 x (read), 1 keys (read), 2 y (read_write), 3 params
//   dropout_add: 0 x (read), 1 keys (read), 2 res (read), 3 y (read_write), 4 params
// Overrides: WG = 256
// Grid: grid_1d(n, WG) = (min(g, 65535), ceil(g / 65535), 1) with g = ceil(n / WG)
// Entry points: dropout, dropout_add

override WG: u32 = 256u;

struct DropoutParams {
  n: u32,          // elements
  site: u32,       // which key of keys (rng.py numbers the sites)
  threshold: u32,  // keep iff the hash is >= threshold
  scale: f32,      // applied to kept elements
};

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> y2: array<f32>;   // y (dropout)
@group(0) @binding(3) var<uniform> p3: DropoutParams;            // params (dropout)
@group(0) @binding(2) var<storage, read> res: array<f32>;        // res (dropout_add)
@group(0) @binding(3) var<storage, read_write> y3: array<f32>;   // y (dropout_add)
@group(0) @binding(4) var<uniform> p4: DropoutParams;            // params (dropout_add)

// PCG output permutation, as in init.wgsl and rng.pcg.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// x[i] * scale where the mask keeps element i, else 0.
fn dropped(i: u32, p: DropoutParams) -> f32 {
  let keep = pcg(keys[p.site] ^ pcg(i)) >= p.threshold;
  return select(0.0, x[i] * p.scale, keep);
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p3.n) { return; }
  y2[i] = dropped(i, p3);
}

@compute @workgroup_size(WG)
fn dropout_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p4.n) { return; }
  y3[i] = res[i] + dropped(i, p4);
}
