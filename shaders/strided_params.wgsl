// strided_params.wgsl — the uniform of the strided products, shared by matmul_coop.wgsl and
// matmul_heads.wgsl: `// #include "strided_params.wgsl"`, expanded by registry.shader_source. Its fields
// are registry.COOP_UNIFORM; the including kernels' headers say what each means.

struct StridedParams {
  N: u32,
  K: u32,
  M: u32,
  a_scale: f32,
  b_scale: f32,
  out_scale: f32,
  part_stride: u32,  // floats between consecutive k-runs' parts (KSPLIT > 1); a multiple of 4
  lda: u32,          // floats between rows of A's, B's, y's stored layouts
  ldb: u32,
  ldy: u32,
  heads: u32,        // batch z is (z / heads, z % heads)
  batches: u32,      // the grid's z is KSPLIT * batches
  a_base: u32,       // A of batch (b, h) starts at float a_base + b * a_bs + h * a_hs; B and y alike
  a_bs: u32,
  a_hs: u32,
  b_base: u32,
  b_bs: u32,
  b_hs: u32,
  y_base: u32,
  y_bs: u32,
  y_hs: u32,
};
