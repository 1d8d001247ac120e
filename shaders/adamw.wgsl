// adamw.wgsl — global gradient norm, clip coefficient and the AdamW update over the flat
// parameter vector (reference/adamw.py; reference/ops.py grad_global_norm, clip_coefficient).
//
// Math (numpy), P elements, t the step count after incrementing:
//   grad_norm_partial:  partials[w] = sum(grads[w*span : (w+1)*span] ** 2)       w < parts
//   adamw_step:         norm = sqrt(sum(partials)); clip = min(1, max_norm / (norm + 1e-6))
//                       (clip = 1 when max_norm <= 0, i.e. no clipping); norm_clip = [norm, clip]
//                       g = grads * clip
//                       m = beta1 * m + one_minus_beta1 * g
//                       v = beta2 * v + one_minus_beta2 * g * g
//                       weights -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + weight_decay * decay * weights)
//   with bc1 = 1 - beta1**t, bc2 = 1 - beta2**t and one_minus_beta* = 1 - beta* computed by the host
//   in float64 and rounded to f32 (as numpy does), decay (P,) 1.0 for elements of 2-D tensors, else 0.
// The clip coefficient stays on the GPU and needs no dispatch of its own: EVERY adamw_step workgroup
// sums the (few: registry.grad_norm_span keeps parts <= 1024) partials itself, in one fixed order
// (strided per invocation, then a tree), so all workgroups get the bit-identical clip; workgroup 0
// also stores [norm, clip] in norm_clip for whoever wants to read it. Nothing is read back.
//
// Bindings (group 0, uniform last):
//   grad_norm_partial:  0 grads (read), 1 partials (read_write, parts floats), 2 params
//   adamw_step:         0 weights (read_write), 1 grads (read), 2 m (read_write), 3 v (read_write),
//                       4 decay (read), 5 partials (read), 6 norm_clip (read_write, 2 floats),
//                       7 params (AdamwParams)
// Overrides: WG = 256 (a power of two for the tree reductions);
//            PER_INV = 1 elements per adamw_step invocation (i = (w * PER_INV + j) * WG + lid): every
//            workgroup repeats the partials' reduction, so fewer, longer workgroups do less of it
//            (SwiftShader, where each barrier of the tree switches every invocation's coroutine)
// Grid: grad_norm_partial grid_1d(parts * WG, WG) (one workgroup per span; parts = ceil(n / span));
//       adamw_step grid_1d(ceil(n / PER_INV), WG)
// Entry points: grad_norm_partial, adamw_step

override WG: u32 = 256u;
override PER_INV: u32 = 1u;

struct GradNormParams {
  n: u32,         // P, elements of grads
  span: u32,      // elements summed by one workgroup of grad_norm_partial
  parts: u32,     // ceil(n / span)
  max_norm: f32,  // <= 0: no clipping
};

struct AdamwParams {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  eps: f32,
  weight_decay: f32,
  bc1: f32,  // 1 - beta1**t
  bc2: f32,  // 1 - beta2**t
  parts: u32,     // partials written by grad_norm_partial
  max_norm: f32,  // <= 0: no clipping
};

@group(0) @binding(0) var<storage, read> in0: array<f32>;            // grads (grad_norm_partial)
@group(0) @binding(1) var<storage, read_write> out1: array<f32>;     // partials (grad_norm_partial)
@group(0) @binding(2) var<uniform> pn: GradNormParams;

@group(0) @binding(0) var<storage, read_write> weights: array<f32>;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> decay: array<f32>;
@group(0) @binding(5) var<storage, read> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> norm_clip: array<f32>;
@group(0) @binding(7) var<uniform> pa: AdamwParams;

var<workgroup> red: array<f32, WG>;

fn workgroup_sum(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(WG)
fn grad_norm_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let w = wid.y * nwg.x + wid.x;
  var acc = 0.0;
  if (w < pn.parts) {
    let start = w * pn.span;
    let stop = min(start + pn.span, pn.n);
    for (var i = start + lid; i < stop; i += WG) { let g = in0[i]; acc += g * g; }
  }
  let total = workgroup_sum(lid, acc);
  if (w < pn.parts && lid == 0u) { out1[w] = total; }
}

@compute @workgroup_size(WG)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let w = wid.y * nwg.x + wid.x;
  var acc = 0.0;
  for (var k = lid; k < pa.parts; k += WG) { acc += partials[k]; }
  let norm = sqrt(workgroup_sum(lid, acc));  // before any return: the whole workgroup reduces
  let clip = select(1.0, min(1.0, pa.max_norm / (norm + 1e-6)), pa.max_norm > 0.0);
  if (w == 0u && lid == 0u) {
    norm_clip[0] = norm;
    norm_clip[1] = clip;
  }
  for (var j = 0u; j < PER_INV; j++) {
    let i = (w * PER_INV + j) * WG + lid;
    if (i >= pa.n) { return; }
    let g = grads[i] * clip;
    let mi = pa.beta1 * m[i] + pa.one_minus_beta1 * g;
    let vi = pa.beta2 * v[i] + pa.one_minus_beta2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    let p = weights[i];
    let update = (mi / pa.bc1) / (sqrt(vi / pa.bc2) + pa.eps) + pa.weight_decay * decay[i] * p;
    weights[i] = p - pa.lr * update;
  }
}
