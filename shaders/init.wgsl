// init.wgsl — counter-based parameter init, bit for bit equal to pyscript_app/reference/init.py.
//
// Math (numpy, reference/init.py init_tensor; rng.py docstring is the spec):
//   bits_j = pcg(key ^ pcg(4*i + j)), j = 0..3          key = rng.tensor_key(seed, tensor_index)
//   s      = sum_j (bits_j >> 10)                       four 22-bit draws, s < 2^24 (exact in f32)
//   z      = f32(s) * 2^-22 - 2.0                       exact: Irwin-Hall(4) - 2
//   out[offset + i] = z * scale                         scale = rng.init_scale(std); one rounding
// fill: out[offset + i] = scale                         (RMSNorm gains = 1, zero-init projections = 0)
//
// Layout: out is a flat f32 array; the kernel writes n elements starting at element `offset`.
// Bindings: 0 out (read_write f32), 1 params (uniform InitParams)
// Overrides: WG = 256 (invocations per workgroup)
// Grid: grid_1d(n, WG) = (min(g, 65535), ceil(g / 65535), 1) with g = ceil(n / WG)
// Entry points: init_normal, fill

override WG: u32 = 256u;

struct InitParams {
  n: u32,       // elements to write
  offset: u32,  // first element of out
  key: u32,     // rng.tensor_key(seed, tensor_index), computed by the host
  scale: f32,   // init_normal: rng.init_scale(std); fill: the constant
};

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> p: InitParams;

// PCG output permutation (Jarzynski & Olano 2020); u32 arithmetic wraps like the reference.
fn pcg(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn init_normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let base = 4u * i;
  let s = (pcg(p.key ^ pcg(base)) >> 10u) + (pcg(p.key ^ pcg(base + 1u)) >> 10u)
        + (pcg(p.key ^ pcg(base + 2u)) >> 10u) + (pcg(p.key ^ pcg(base + 3u)) >> 10u);
  let z = f32(s) * (1.0 / 4194304.0) - 2.0;  // both steps exact, so fusing them changes nothing
  out[p.offset + i] = z * p.scale;
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  out[p.offset + i] = p.scale;
}
