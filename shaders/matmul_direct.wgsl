// matmul_direct.wgsl — the model's fused linear layers (matmul.wgsl's entries of the same names
// without "_direct") with no workgroup memory and no barriers: every invocation computes one 4 x 4
// block of an output straight from global memory. For CPU adapters: SwiftShader runs a workgroup's invocations 4 at a time as
// coroutines that all switch at every barrier, so matmul.wgsl's tiles (one barrier per k-slice of 8)
// cost more in switching than they save in loads there, worst on the output layer's long inner
// dimension (nano's lm_head dx: 128 slices for 2 workgroups). The CPU's caches do the reuse that
// workgroup memory does on a GPU. registry.ADAPTER_KERNELS substitutes these entries for
// matmul.wgsl's on such adapters; on a GPU they would be slow (uncoalesced reads).
//
// Math (numpy, reference/ops.py matmul_backward), the same as matmul.wgsl's entries of that name:
//   matmul_backward_direct:      dx = dy @ w.T   dy (N,M), w (K,M) -> dx (N,K)
//                                dw = x.T @ dy   x (N,K), dy (N,M) -> dw (K,M)
//   matmul_backward_relu_direct: as above with dx *= (x > 0) (x = relu(pre) was the forward input)
//   matmul_forward_residual_direct: y = res + x @ w                  res, y (N,M)
//   matmul_forward_rmsnorm_direct:  rstd = 1 / sqrt(mean(x**2, axis=1) + eps); xn = x * rstd[:, None] * g
//                                   y = xn @ w                       g (K,), rstd (N,), xn (N,K)
//   matmul_forward_rmsnorm_relu_direct: y = relu(xn @ w), xn as above
// All arrays f32, row-major. The uniform holds the FORWARD's N, K, M (x (N,K) @ w (K,M)).
// accumulate = 0: outputs = result; accumulate = 1: outputs += result (backward, residual). The
// rmsnorm entries have eps in its place and always overwrite y, xn and rstd; each invocation
// computes the rstd of its 4 rows itself (K = C: cheap), and those of column block 0 also store xn
// and rstd for the backward.
// Each product output is one fma chain over the inner dimension in ascending order, as in
// matmul.wgsl, so the backward and residual entries give the same bits as the tiled ones on one
// adapter (the rmsnorm entries sum the squares in another order: equal to rounding).
//
// Bindings (group 0), uniform last, as matmul.wgsl:
//   backward: 0 x, 1 w, 2 dy (read), 3 dx (read_write), 4 dw (read_write), 5 params
//   forward_residual: 0 x, 1 w, 2 res (read), 3 y (read_write), 4 params
//   forward_rmsnorm(_relu): 0 x, 1 w, 2 g (read), 3 y, 4 xn, 5 rstd (read_write), 6 params (NormMatmulParams)
// Overrides: WG = 64 invocations per workgroup.
// Grid: backward grid_1d(dx blocks + dw blocks, WG), dx blocks = ceil(N/4) * ceil(K/4) first
//   (numbered row-major over (row block, column block)), then dw blocks = ceil(K/4) * ceil(M/4);
//   forward entries grid_1d(ceil(N/4) * ceil(M/4), WG).
// Entry points: matmul_backward_direct, matmul_backward_relu_direct, matmul_forward_residual_direct,
//   matmul_forward_rmsnorm_direct, matmul_forward_rmsnorm_relu_direct

override WG: u32 = 64u;

struct MatmulParams {
  N: u32,
  K: u32,
  M: u32,
  accumulate: u32,
};

struct NormMatmulParams {
  N: u32,
  K: u32,
  M: u32,
  eps: f32,
};

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;          // dy | res | g
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;    // dx | y
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;    // dw | xn
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;  // rstd (rmsnorm entries)
@group(0) @binding(4) var<uniform> p4: MatmulParams;              // forward_residual
@group(0) @binding(5) var<uniform> p: MatmulParams;               // backward
@group(0) @binding(6) var<uniform> p6: NormMatmulParams;          // rmsnorm entries

// The block's accumulators: row r0 + i of the block in acc{i}, its 4 columns in .x .. .w.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

fn add_outer(a: vec4<f32>, b: vec4<f32>) {
  acc0 = fma(vec4<f32>(a.x), b, acc0);
  acc1 = fma(vec4<f32>(a.y), b, acc1);
  acc2 = fma(vec4<f32>(a.z), b, acc2);
  acc3 = fma(vec4<f32>(a.w), b, acc3);
}

fn acc_row(i: u32) -> vec4<f32> {
  switch (i) {
    case 0u: { return acc0; } case 1u: { return acc1; } case 2u: { return acc2; } default: { return acc3; }
  }
}

// dx block rows r0..r0+3, columns c0..c0+3: sum over m of dy[r, m] * w[c, m]. Rows and columns
// past the edge are clamped to the last one (valid reads) and not stored.
fn dx_block(r0: u32, c0: u32, relu: bool) {
  let N = p.N; let K = p.K; let M = p.M;
  let r = vec4<u32>(min(r0, N - 1u), min(r0 + 1u, N - 1u), min(r0 + 2u, N - 1u), min(r0 + 3u, N - 1u)) * M;
  let c = vec4<u32>(min(c0, K - 1u), min(c0 + 1u, K - 1u), min(c0 + 2u, K - 1u), min(c0 + 3u, K - 1u)) * M;
  for (var m = 0u; m < M; m++) {
    let a = vec4<f32>(dy[r.x + m], dy[r.y + m], dy[r.z + m], dy[r.w + m]);
    let b = vec4<f32>(w[c.x + m], w[c.y + m], w[c.z + m], w[c.w + m]);
    add_outer(a, b);
  }
  for (var i = 0u; i < 4u; i++) {
    let row = r0 + i;
    let v = acc_row(i);
    for (var j = 0u; j < 4u; j++) {
      let col = c0 + j;
      if (row < N && col < K) {
        let o = row * K + col;
        var y = v[j];
        if (relu) { y = select(0.0, y, x[o] > 0.0); }
        if (p.accumulate != 0u) { dx[o] = dx[o] + y; } else { dx[o] = y; }
      }
    }
  }
}

// dw block rows r0..r0+3 (of K), columns c0..c0+3 (of M): sum over n of x[n, r] * dy[n, c].
fn dw_block(r0: u32, c0: u32) {
  let N = p.N; let K = p.K; let M = p.M;
  let r = vec4<u32>(min(r0, K - 1u), min(r0 + 1u, K - 1u), min(r0 + 2u, K - 1u), min(r0 + 3u, K - 1u));
  let c = vec4<u32>(min(c0, M - 1u), min(c0 + 1u, M - 1u), min(c0 + 2u, M - 1u), min(c0 + 3u, M - 1u));
  for (var n = 0u; n < N; n++) {
    let xr = n * K;
    let dr = n * M;
    let a = vec4<f32>(x[xr + r.x], x[xr + r.y], x[xr + r.z], x[xr + r.w]);
    let b = vec4<f32>(dy[dr + c.x], dy[dr + c.y], dy[dr + c.z], dy[dr + c.w]);
    add_outer(a, b);
  }
  for (var i = 0u; i < 4u; i++) {
    let row = r0 + i;
    let v = acc_row(i);
    for (var j = 0u; j < 4u; j++) {
      let col = c0 + j;
      if (row < K && col < M) {
        let o = row * M + col;
        if (p.accumulate != 0u) { dw[o] = dw[o] + v[j]; } else { dw[o] = v[j]; }
      }
    }
  }
}

fn backward(b: u32, relu: bool) {
  let kb = (p.K + 3u) / 4u;
  let dx_blocks = ((p.N + 3u) / 4u) * kb;
  let mb = (p.M + 3u) / 4u;
  if (b < dx_blocks) {
    dx_block((b / kb) * 4u, (b % kb) * 4u, relu);
  } else if (b < dx_blocks + kb * mb) {
    let t = b - dx_blocks;
    dw_block((t / mb) * 4u, (t % mb) * 4u);
  }
}

@compute @workgroup_size(WG)
fn matmul_backward_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  backward((wid.y * nwg.x + wid.x) * WG + lid, false);
}

@compute @workgroup_size(WG)
fn matmul_backward_relu_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32) {
  backward((wid.y * nwg.x + wid.x) * WG + lid, true);
}

// --- forward entries ------------------------------------------------------------------------------
// The block's 4 rows and 4 columns, clamped to the last valid one (valid reads; not stored).
fn clamped4(first: u32, count: u32) -> vec4<u32> {
  return vec4<u32>(min(first, count - 1u), min(first + 1u, count - 1u), min(first + 2u, count - 1u),
                   min(first + 3u, count - 1u));
}

// y block = res + x @ w (x (N,K), w (K,M)).
@compute @workgroup_size(WG)
fn matmul_forward_residual_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32) {
  let N = p4.N; let K = p4.K; let M = p4.M;
  let b = (wid.y * nwg.x + wid.x) * WG + lid;
  let mb = (M + 3u) / 4u;
  if (b >= ((N + 3u) / 4u) * mb) { return; }
  let r0 = (b / mb) * 4u;
  let c0 = (b % mb) * 4u;
  let r = clamped4(r0, N) * K;
  let c = clamped4(c0, M);
  for (var k = 0u; k < K; k++) {
    let a = vec4<f32>(x[r.x + k], x[r.y + k], x[r.z + k], x[r.w + k]);
    let wr = k * M;
    add_outer(a, vec4<f32>(w[wr + c.x], w[wr + c.y], w[wr + c.z], w[wr + c.w]));
  }
  for (var i = 0u; i < 4u; i++) {
    let v = acc_row(i);
    for (var j = 0u; j < 4u; j++) {
      if (r0 + i < N && c0 + j < M) {
        let o = (r0 + i) * M + c0 + j;
        let y = v[j] + dy[o];
        if (p4.accumulate != 0u) { dx[o] = dx[o] + y; } else { dx[o] = y; }
      }
    }
  }
}

// rstd of row `row` of x (N,K): 1 / sqrt(mean(x**2) + eps).
fn row_rstd(row: u32, K: u32, eps: f32) -> f32 {
  var ss = 0.0;
  for (var k = 0u; k < K; k++) { let v = x[row * K + k]; ss += v * v; }
  return 1.0 / sqrt(ss / f32(K) + eps);
}

fn normed_forward(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, relu: bool) {
  let N = p6.N; let K = p6.K; let M = p6.M;
  let b = (wid.y * nwg.x + wid.x) * WG + lid;
  let mb = (M + 3u) / 4u;
  if (b >= ((N + 3u) / 4u) * mb) { return; }
  let r0 = (b / mb) * 4u;
  let c0 = (b % mb) * 4u;
  let keep = c0 == 0u;  // column block 0 stores xn and rstd (one invocation per row block)
  let rows = clamped4(r0, N);
  let s = vec4<f32>(row_rstd(rows.x, K, p6.eps), row_rstd(rows.y, K, p6.eps), row_rstd(rows.z, K, p6.eps),
                    row_rstd(rows.w, K, p6.eps));
  let r = rows * K;
  let c = clamped4(c0, M);
  for (var k = 0u; k < K; k++) {
    let gk = dy[k];
    // xn = x * rstd * g in rmsnorm_forward's order
    let a = vec4<f32>(x[r.x + k] * s.x * gk, x[r.y + k] * s.y * gk, x[r.z + k] * s.z * gk, x[r.w + k] * s.w * gk);
    if (keep) {
      for (var i = 0u; i < 4u; i++) { if (r0 + i < N) { dw[(r0 + i) * K + k] = a[i]; } }
    }
    let wr = k * M;
    add_outer(a, vec4<f32>(w[wr + c.x], w[wr + c.y], w[wr + c.z], w[wr + c.w]));
  }
  for (var i = 0u; i < 4u; i++) {
    if (r0 + i >= N) { break; }
    if (keep) { rstd[r0 + i] = s[i]; }
    let v = acc_row(i);
    for (var j = 0u; j < 4u; j++) {
      if (c0 + j < M) {
        var y = v[j];
        if (relu) { y = max(y, 0.0); }
        dx[(r0 + i) * M + c0 + j] = y;
      }
    }
  }
}

@compute @workgroup_size(WG)
fn matmul_forward_rmsnorm_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
  normed_forward(wid, nwg, lid, false);
}

@compute @workgroup_size(WG)
fn matmul_forward_rmsnorm_relu_direct(@builtin(workgroup_id) wid: vec3<u32>,
                                      @builtin(num_workgroups) nwg: vec3<u32>,
                                      @builtin(local_invocation_index) lid: u32) {
  normed_forward(wid, nwg, lid, true);
}
