// benches/browser/framecode.mjs — the frame code of benches/src/framecode.rs, in JavaScript: the
// 8x8 block code the stimulus (`edgedesk-bench stimulus`) draws, read back from a luma plane.
// Same layout, threshold, margin and CRC rules as the Rust reader (see the module docs there):
// a read fails (returns an object with `error`) instead of guessing.
//
// Every exported function is self-contained (no references outside its own body) so that
// the page meter (page.mjs) can ship it into a page with Function.prototype.toString().

/**
 * Reads the code in `rect` ({x, y, w, h}) of a luma plane `y` (Uint8Array, `stride` bytes a
 * row). Returns { code } or { error }.
 */
export function readLuma(y, stride, rect) {
  const COLS = 8;
  const ROWS = 8;
  const MIN_CONTRAST = 64;
  const MARGIN = 0.25;
  const crc16 = (bytes) => {
    let crc = 0xffff;
    for (const b of bytes) {
      crc ^= b << 8;
      for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
  };
  const middle = (lo, hi) => {
    const a = lo + (hi - lo) * 0.25;
    const b = lo + (hi - lo) * 0.75;
    const start = Math.max(0, Math.ceil(a - 0.5));
    const end = Math.max(0, Math.ceil(b - 0.5));
    if (end > start) return [start, end];
    const c = Math.max(0, Math.floor((lo + hi) / 2));
    return [c, c + 1];
  };
  const refWhite = (col, row) => ((col & 1) === 0) === (row === 0);
  if (rect.w < 4 * COLS || rect.h < 4 * ROWS) return { error: 'rect smaller than 4 px per cell' };
  const right = rect.x + rect.w;
  const bottom = rect.y + rect.h;
  if (right > stride || (bottom - 1) * stride + right > y.length) return { error: 'rect outside the plane' };
  const cw = rect.w / COLS;
  const ch = rect.h / ROWS;
  const means = [];
  for (let row = 0; row < ROWS; row++) {
    const top = rect.y + row * ch;
    const [r0, r1] = middle(top, top + ch);
    const line = [];
    for (let col = 0; col < COLS; col++) {
      const left = rect.x + col * cw;
      const [c0, c1] = middle(left, left + cw);
      let sum = 0;
      let n = 0;
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) sum += y[r * stride + c];
        n += c1 - c0;
      }
      line.push(sum / n);
    }
    means.push(line);
  }
  let white = 0;
  let black = 0;
  for (const row of [0, ROWS - 1]) {
    for (let col = 0; col < COLS; col++) {
      if (refWhite(col, row)) white += means[row][col];
      else black += means[row][col];
    }
  }
  white /= COLS;
  black /= COLS;
  const contrast = white - black;
  if (contrast < MIN_CONTRAST) return { error: 'low contrast' };
  const threshold = (white + black) / 2;
  const margin = MARGIN * contrast;
  for (const row of [0, ROWS - 1]) {
    for (let col = 0; col < COLS; col++) {
      const d = means[row][col] - threshold;
      if (d * (refWhite(col, row) ? 1 : -1) < margin) return { error: `bad reference (${col}, ${row})` };
    }
  }
  let word = 0n;
  let ambiguous = 0;
  for (let row = 1; row < ROWS - 1; row++) {
    for (let col = 0; col < COLS; col++) {
      const d = means[row][col] - threshold;
      if (Math.abs(d) < margin) ambiguous++;
      word = (word << 1n) | (d > 0 ? 1n : 0n);
    }
  }
  if (ambiguous) return { error: `${ambiguous} ambiguous cells` };
  const code = Number(word >> 16n);
  const crc = Number(word & 0xffffn);
  const bytes = [(code >>> 24) & 255, (code >>> 16) & 255, (code >>> 8) & 255, code & 255];
  if (crc !== crc16(bytes)) return { error: 'checksum' };
  return { code };
}

/**
 * Paints `code` into `rect` of a luma plane (white 235, black 16, limited range), exactly where
 * the Rust painter puts its cells (edges at x + col * w / 8 rounded down). For self-checks.
 */
export function paintLuma(y, stride, rect, code) {
  const crc16 = (bytes) => {
    let crc = 0xffff;
    for (const b of bytes) {
      crc ^= b << 8;
      for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
  };
  const bytes = [(code >>> 24) & 255, (code >>> 16) & 255, (code >>> 8) & 255, code & 255];
  const word = (BigInt(code >>> 0) << 16n) | BigInt(crc16(bytes));
  const edge = (o, size, i) => o + Math.floor((size * i) / 8);
  for (let row = 0; row < 8; row++) {
    for (let col = 0; col < 8; col++) {
      let white;
      if (row === 0 || row === 7) white = ((col & 1) === 0) === (row === 0);
      else white = ((word >> BigInt(47 - ((row - 1) * 8 + col))) & 1n) === 1n;
      const v = white ? 235 : 16;
      for (let yy = edge(rect.y, rect.h, row); yy < edge(rect.y, rect.h, row + 1); yy++) {
        for (let xx = edge(rect.x, rect.w, col); xx < edge(rect.x, rect.w, col + 1); xx++) y[yy * stride + xx] = v;
      }
    }
  }
}
