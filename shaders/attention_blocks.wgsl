// attention_blocks.wgsl — causal multi-head self-attention forward as 64 x 64 block products
// (FlashAttention-2's forward, CUDA cores only), for GPUs: the same math, bindings and uniform as
// attention_rows.wgsl's attention_rows_forward, which it replaces where gpu/attention_ops.py picks
// "blocks" (attention_blocks_backward.wgsl is its backward; either pairs with either).
//
// Math (numpy, per batch b and head h; q, k, v (T,D) are head h's columns of qkv; scale = 1/sqrt(D)):
//   S = q @ k.T * scale, S[t, s > t] = -inf;  lse = logsumexp(S, axis=1);  y = exp(S - lse[:, None]) @ v
// Shapes (f32, row-major): qkv (B,T,3C) with columns [q | k | v] and head h at h*D:(h+1)*D inside
//   each; y (B,T,C); lse (B,H,T). D = C / H, a multiple of 4, at most 64 (narrower heads are padded
//   with zero columns to 64: correct, but the work of D = 64).
//
// Why blocks: attention_rows_forward keeps a row's q and accumulator in registers (222 registers per
// invocation on an H200) and reads each key and value from workgroup memory once per vec4 multiply-add.
// Here a workgroup of 256 invocations (16 x 16) owns 64 query rows; invocation (tx, ty) holds the
// scores of rows ty*4 .. +3 against keys tx*4 .. +3 of the current key block and the output columns
// tx*4 .. +3 (vec4 group tx) of the same rows: one vec4 load from workgroup memory feeds 4 vec4
// multiply-adds.
//
// Per key block (64 keys, blocks 0 .. the workgroup's own: causal):
//   1. S (64 x 64) over D in chunks of DC = 16 columns: q*scale and k staged TRANSPOSED in `chunk`
//      ([column][row / 4] vec4).
//   2. S, masked (-3e38 where key > query), into blk [row][key / 4]; one invocation per row then
//      takes the row's block maximum, the new running maximum m, alpha = exp(m_old - m), rewrites the
//      row as P = exp(S - m) and updates the running sum l = l * alpha + sum(P) (online softmax; each
//      row sums in its own fixed order); (m, l, alpha) go to `stat`.
//   3. y = y * alpha + P @ v: v rows staged 32 at a time; per 4 keys, the invocation's 4 rows of P
//      (4 vec4) and each key's vec4 column group of v.
// At the end y / l and lse = m + log(l).
//
// Bindings (group 0, uniform last): 0 qkv (read), 1 y (read_write), 2 lse (read_write), 3 params
// Overrides: D = 64 head width (a multiple of 4, at most 64). Blocks and the workgroup are constants.
// Grid: (ceil(T / 64), H, B), the last query block (the one with the most keys) first.
// Workgroup memory: 16 + 8 KiB + 1 KiB = 25 KiB: above WebGPU's default 16 KiB, so only for adapters
//   whose limit allows it (attention_ops asks the executor's max_workgroup_bytes).
// Entry point: attention_blocks_forward

override D: u32 = 64u;
override D4: u32 = D / 4u;  // derived: vec4 columns of a head row (callers never set it)
const BR: u32 = 64u;        // query rows / keys per block
const DC: u32 = 16u;        // head columns per score chunk
const NT: u32 = 256u;       // invocations per workgroup: 16 x 16
const NEG_BIG: f32 = -3.0e38;  // "minus infinity" (exp underflows to exactly 0)

struct AttentionParams {
  B: u32,
  T: u32,
  C: u32,
  H: u32,
};

@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(3) var<uniform> p: AttentionParams;

var<workgroup> blk: array<vec4<f32>, 1024>;  // [row][key / 4]: S, then P of the current key block
var<workgroup> chunk: array<vec4<f32>, 512>; // q^T, k^T chunks [tensor][column][row / 4]; then v rows [key][c4]
var<workgroup> stat: array<vec4<f32>, BR>;   // per row: (m, l, alpha, -)

// Index of vec4 column `col4` of row (b, t) in a (B,T,width4*4) tensor.
fn row_vec4(b: u32, t: u32, T: u32, width4: u32, col4: u32) -> u32 {
  return (b * T + t) * width4 + col4;
}

// Vec4 column c4 of head h in row t of qkv's part (0 q * scale, 1 k, 2 v); zeros past T or past D.
fn head_vec4(b: u32, h: u32, t: u32, c4: u32, part: u32) -> vec4<f32> {
  let T = p.T;
  let C4 = p.C / 4u;
  if (t >= T || c4 >= D4) { return vec4<f32>(0.0); }
  let v = qkv[row_vec4(b, t, T, 3u * C4, part * C4 + h * D4 + c4)];
  if (part == 0u) { return v * inverseSqrt(f32(D)); }
  return v;
}

@compute @workgroup_size(256)
fn attention_blocks_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let T = p.T;
  let C4 = p.C / 4u;
  let h = wid.y;
  let b = wid.z;
  let blk_q = (T + BR - 1u) / BR - 1u - wid.x;  // the last query block first
  let r0 = blk_q * BR;
  let tx = tid % 16u;
  let ty = tid / 16u;
  let rows = vec4<u32>(r0 + ty * 4u) + vec4<u32>(0u, 1u, 2u, 3u);  // my 4 query rows
  if (tid < BR) { stat[tid] = vec4<f32>(NEG_BIG, 0.0, 1.0, 0.0); }
  var y0 = vec4<f32>(0.0); var y1 = vec4<f32>(0.0); var y2 = vec4<f32>(0.0); var y3 = vec4<f32>(0.0);
  for (var kb = 0u; kb <= blk_q; kb++) {
    let c0 = kb * BR;
    // 1. S of my rows ty*4+i against my keys tx*4+j
    var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
    for (var d0 = 0u; d0 < D4 * 4u; d0 += DC) {
      workgroupBarrier();  // the previous users of chunk (and of stat, blk) are done
      // stage columns d0 .. d0 + 15 of q*scale (rows r0 ..) and k (rows c0 ..) transposed:
      // chunk[tensor * 256 + d * 16 + row / 4][row % 4]
      for (var e = tid; e < 2u * BR * (DC / 4u); e += NT) {
        let tensor = e / (BR * (DC / 4u));
        let within = e % (BR * (DC / 4u));
        let row = within / (DC / 4u);
        let c4 = within % (DC / 4u);
        let v = head_vec4(b, h, select(r0, c0, tensor == 1u) + row, d0 / 4u + c4, tensor);
        let slot = tensor * (DC * 16u) + (c4 * 4u) * 16u + row / 4u;
        let lane = row % 4u;
        chunk[slot][lane] = v.x;
        chunk[slot + 16u][lane] = v.y;
        chunk[slot + 32u][lane] = v.z;
        chunk[slot + 48u][lane] = v.w;
      }
      workgroupBarrier();
      for (var d = 0u; d < DC; d++) {
        let qa = chunk[d * 16u + ty];
        let kv = chunk[DC * 16u + d * 16u + tx];
        s0 = fma(vec4<f32>(qa.x), kv, s0);
        s1 = fma(vec4<f32>(qa.y), kv, s1);
        s2 = fma(vec4<f32>(qa.z), kv, s2);
        s3 = fma(vec4<f32>(qa.w), kv, s3);
      }
    }
    // 2. masked S into blk; one invocation per row: online softmax over the block
    let keys = vec4<u32>(c0 + tx * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    blk[(ty * 4u) * 16u + tx] = select(vec4<f32>(NEG_BIG), s0, keys <= vec4<u32>(rows.x));
    blk[(ty * 4u + 1u) * 16u + tx] = select(vec4<f32>(NEG_BIG), s1, keys <= vec4<u32>(rows.y));
    blk[(ty * 4u + 2u) * 16u + tx] = select(vec4<f32>(NEG_BIG), s2, keys <= vec4<u32>(rows.z));
    blk[(ty * 4u + 3u) * 16u + tx] = select(vec4<f32>(NEG_BIG), s3, keys <= vec4<u32>(rows.w));
    workgroupBarrier();
    if (tid < BR) {
      let st = stat[tid];
      // each row walks its 16 vec4 starting at its own offset (tid % 16): rows lie 256 bytes apart,
      // so walking them in step would make 8 invocations read one bank at once
      var mx = vec4<f32>(NEG_BIG);
      for (var c = 0u; c < 16u; c++) { mx = max(mx, blk[tid * 16u + (c + tid) % 16u]); }
      // every row sees key c0 <= its row (c0 <= r0): m is finite after the first block
      let m = max(st.x, max(max(mx.x, mx.y), max(mx.z, mx.w)));
      let alpha = exp(st.x - m);
      var l = st.y * alpha;
      for (var c = 0u; c < 16u; c++) {  // (the sum in that order: fixed per row, deterministic)
        let at = tid * 16u + (c + tid) % 16u;
        let e = exp(blk[at] - m);  // masked keys: exp(-3e38 - m) == 0
        blk[at] = e;
        l += e.x + e.y + e.z + e.w;
      }
      stat[tid] = vec4<f32>(m, l, alpha, 0.0);
    }
    // 3. y = y * alpha + P @ v over the block's keys, v rows staged 32 at a time as chunk[key * 16 + c4]
    for (var kc = 0u; kc < BR; kc += 32u) {
      workgroupBarrier();  // P and stat are written; the score reads of chunk are done
      for (var e = tid; e < 32u * 16u; e += NT) {
        chunk[e] = head_vec4(b, h, c0 + kc + e / 16u, e % 16u, 2u);
      }
      if (kc == 0u) {
        y0 *= stat[ty * 4u].z; y1 *= stat[ty * 4u + 1u].z; y2 *= stat[ty * 4u + 2u].z; y3 *= stat[ty * 4u + 3u].z;
      }
      workgroupBarrier();
      for (var c4 = 0u; c4 < 8u; c4++) {
        let p0 = blk[(ty * 4u) * 16u + kc / 4u + c4];
        let p1 = blk[(ty * 4u + 1u) * 16u + kc / 4u + c4];
        let p2 = blk[(ty * 4u + 2u) * 16u + kc / 4u + c4];
        let p3 = blk[(ty * 4u + 3u) * 16u + kc / 4u + c4];
        for (var cc = 0u; cc < 4u; cc++) {
          let vv = chunk[(c4 * 4u + cc) * 16u + tx];
          y0 = fma(vec4<f32>(p0[cc]), vv, y0);
          y1 = fma(vec4<f32>(p1[cc]), vv, y1);
          y2 = fma(vec4<f32>(p2[cc]), vv, y2);
          y3 = fma(vec4<f32>(p3[cc]), vv, y3);
        }
      }
    }
  }
  if (tid < BR && r0 + tid < T) {
    let st = stat[tid];
    lse_out[(b * p.H + h) * T + r0 + tid] = st.x + log(st.y);
  }
  if (tx >= D4) { return; }
  let col = h * D4 + tx;
  if (rows.x < T) { y_out[row_vec4(b, rows.x, T, C4, col)] = y0 / stat[ty * 4u].y; }
  if (rows.y < T) { y_out[row_vec4(b, rows.y, T, C4, col)] = y1 / stat[ty * 4u + 1u].y; }
  if (rows.z < T) { y_out[row_vec4(b, rows.z, T, C4, col)] = y2 / stat[ty * 4u + 2u].y; }
  if (rows.w < T) { y_out[row_vec4(b, rows.w, T, C4, col)] = y3 / stat[ty * 4u + 3u].y; }
}
