// elementwise.wgsl — ReLU and GELU forward/backward and the residual add (reference/ops.py,
// reference/ops_gpt2.py).
//
// Math (numpy):
//   relu_forward:   y  = np.maximum(x, 0)
//   relu_backward:  dx = np.where(x > 0, dy, 0)          (derivative at 0 taken as 0)
//   gelu_forward:   y  = 0.5 * x * (1 + np.tanh(u)),  u = sqrt(2/pi) * (x + 0.044715 * x**3)
//   gelu_backward:  dx = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * sqrt(2/pi) * (1 + 3 * 0.044715 * x**2)),
//                   t = np.tanh(u)                        (GPT-2's tanh approximation; x is the forward's input)
//   add:            y  = a + b                            (residual stream: x + branch(x))
//   add_inplace:    a += b                                (accumulate a gradient or a residual)
// Layout: flat f32 arrays of n elements (any shape, row-major).
// Bindings (group 0, uniform last; entries share binding numbers with different roles):
//   relu_forward:  0 x (read), 1 y (read_write), 2 params
//   relu_backward: 0 dy (read), 1 x (read), 2 dx (read_write), 3 params
//   add:           0 a (read), 1 b (read), 2 y (read_write), 3 params
//   add_inplace:   0 a (read_write), 1 b (read), 2 params
//   gelu_forward, gelu_backward: as relu_forward, relu_backward
// GELU without tanh: 0.5 * (1 + tanh(u)) = sigmoid(2u) = s, and 0.5 * (1 - t**2) = 2 s (1 - s). Both are
// computed from a = exp(-2|u|), which lies in (0, 1] for every x: tanh written as (e^2u - 1) / (e^2u + 1)
// gives inf / inf = NaN once e^2u overflows (|x| past ~ 10), and x**3 itself overflows past |x| ~ 7e12.
// From |u| = 40 on (a = e^-80) s is taken as exactly 0 or 1 and the derivative's second term (below
// 1e-32 there) as 0, so an infinite u gives no 0 * inf and a huge negative x gives y = -0.
// Overrides: WG = 256
// Grid: grid_1d(n, WG) = (min(g, 65535), ceil(g / 65535), 1) with g = ceil(n / WG)
// Entry points: relu_forward, relu_backward, add, add_inplace, gelu_forward, gelu_backward

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

const GELU_K: f32 = 0.7978845608028654;  // sqrt(2 / pi)
const GELU_A: f32 = 0.044715;
const GELU_U_MAX: f32 = 40.0;

// (s, 1 - s) with s = sigmoid(2u) = 0.5 * (1 + tanh(u)), u = GELU_K * (x + GELU_A * x^3), each computed
// without cancellation: for u >= 0, s = 1 / (1 + a) and 1 - s = a / (1 + a) with a = exp(-2|u|); for
// u < 0 the other way round.
fn gelu_halves(x: f32) -> vec2<f32> {
  let u = GELU_K * (x + GELU_A * x * x * x);
  if (!(abs(u) < GELU_U_MAX)) { return select(vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), u >= 0.0); }
  let a = exp(-2.0 * abs(u));
  let r = 1.0 / (1.0 + a);
  return select(vec2<f32>(a * r, r), vec2<f32>(r, a * r), u >= 0.0);
}

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p2.n) { return; }
  let x = in0[i];
  out1[i] = x * gelu_halves(x).x;
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= p3.n) { return; }
  let x = in1[i];
  let h = gelu_halves(x);
  let u = GELU_K * (x + GELU_A * x * x * x);
  // 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx = s + 2 x s (1 - s) du/dx; the second term only where |u| < 40
  let du = GELU_K * (1.0 + 3.0 * GELU_A * x * x);
  let tail = select(0.0, 2.0 * x * (h.x * h.y) * du, abs(u) < GELU_U_MAX);
  out2[i] = in0[i] * (h.x + tail);
}
