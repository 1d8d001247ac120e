// elementwise.wgsl — ReLU forward/backward and the residual add (reference/ops.py).
//
// Math (numpy):
//   relu_forward:   y  = np.maximum(x, 0)
//   relu_backward:  dx = np.where(x > 0, dy, 0)          (derivative at 0 taken as 0)
//   add:            y  = a + b                            (residual stream: x + branch(x))
//   add_inplace:    a += b                                (accumulate a gradient or a residual)
// Layout: flat f32 arrays of n elements (any shape, row-major).
// Bindings (group 0, uniform last; entries share binding numbers with different roles):
//   relu_forward:  0 x (read), 1 y (read_write), 2 params
//   relu_backward: 0 dy (read), 1 x (read), 2 dx (read_write), 3 params
//   add:           0 a (read), 1 b (read), 2 y (read_write), 3 params
//   add_inplace:   0 a (read_write), 1 b (read), 2 params
// Overrides: WG = 256
// Grid: grid_1d(n, WG) = (min(g, 65535), ceil(g / 65535), 1) with g = ceil(n / WG)
// Entry points: relu_forward, relu_backward, add, add_inplace

override WG: u32 = 256u;

struct EltParams {
  n: u32,  // elements
};

@group(0) @binding(0) var<storage, read> in0: array<f32>;          // x | dy | a
@group(0) @binding(1) var<storage, read> in1: array<f32>;          // x (relu_backward) | b
@group(0) @binding(0) var<storage, read_write> inout0: array<f32>; // a (add_inplace)
@group(0) @binding(1) var<storage, read_write> out1: array<f32>;   // y (relu_forward)
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;   // dx | y (add)
@group(0) @binding(2) var<uniform> p2: EltParams;                  // params of 2-buffer entries
@group(0) @binding(3) var<uniform> p3: EltParams;                  // params of 3-buffer entries

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p2.n) { return; }
  out1[i] = max(in0[i], 0.0);
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p3.n) { return; }
  out2[i] = select(0.0, in0[i], in1[i] > 0.0);
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p3.n) { return; }
  out2[i] = in0[i] + in1[i];
}

@compute @workgroup_size(WG)
fn add_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p2.n) { return; }
  inout0[i] = inout0[i] + in1[i];
}
