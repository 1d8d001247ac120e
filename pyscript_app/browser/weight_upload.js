// Model weights from a File into a GPU buffer, chunk by chunk, without passing through Python (the
// inference page, browser/inference_page.py): File.slice -> arrayBuffer -> (widen to f32) ->
// queue.writeBuffer. At most one chunk (plus its f32 copy) is held in JS memory at a time, and the
// wasm heap never sees the weights.
//
//   await uploadTensor(device, file, start, count, dtype, buffer, dstOffset, chunkValues)
//     count values of dtype ("f32" | "f16" | "bf16") at byte `start` of `file` -> f32 at dstOffset of
//     `buffer`, chunkValues values per queue write. Rejects with an Error when the file ends early.
//
// f16 -> f32: the JS Float16Array where the engine has one (a typed-array copy converts each value),
// else a 65,536-entry table of every f16 bit pattern's value (exact: every f16 is an f32). bf16 is
// the top half of an f32: shift left by 16.

let f16Table = null;

function f16Values() {
  if (f16Table === null) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h += 1) {
      const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
      f16Table[h] = exp === 0 ? sign * frac * 2 ** -24
        : exp === 31 ? (frac ? NaN : sign * Infinity)
        : sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }
  }
  return f16Table;
}

export function widen(bytes, dtype) {
  if (dtype === "f32") return new Float32Array(bytes);
  const halves = new Uint16Array(bytes);
  if (dtype === "bf16") {
    const out = new Uint32Array(halves.length);
    for (let i = 0; i < halves.length; i += 1) out[i] = halves[i] << 16;
    return new Float32Array(out.buffer);
  }
  if (dtype !== "f16") throw new Error(`unknown dtype ${dtype}`);
  if (typeof Float16Array === "function") return new Float32Array(new Float16Array(bytes));
  const table = f16Values(), out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i += 1) out[i] = table[halves[i]];
  return out;
}

export function hasFloat16Array() {
  return typeof Float16Array === "function";
}

export async function uploadTensor(device, file, start, count, dtype, buffer, dstOffset, chunkValues) {
  const width = dtype === "f32" ? 4 : 2;
  for (let i = 0; i < count; i += chunkValues) {
    const n = Math.min(chunkValues, count - i);
    const from = start + i * width, to = from + n * width;
    const bytes = await file.slice(from, to).arrayBuffer();
    if (bytes.byteLength !== n * width) throw new Error(`${file.name} ended early (at byte ${from + bytes.byteLength})`);
    device.queue.writeBuffer(buffer, dstOffset + 4 * i, widen(bytes, dtype));
  }
}
