// The frame-code reader the browser measurements use (benches/browser/framecode.mjs): it reads
// what it paints, follows benches/src/framecode.rs's layout, and refuses blends and blanks
// instead of guessing.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readLuma, paintLuma } from '../../benches/browser/framecode.mjs';

const w = 200;
const h = 180;
const rect = { x: 17, y: 9, w: 160, h: 160 };

test('reads back every code it paints', () => {
  for (const code of [0, 1, 2, 0xffff, 0x12345678, 0xa5a50f0f, 0xffffffff, 4242]) {
    const y = new Uint8Array(w * h).fill(126);
    paintLuma(y, w, rect, code);
    assert.deepEqual(readLuma(y, w, rect), { code });
  }
});

test('has the layout of benches/src/framecode.rs', () => {
  // Its test layout_has_references_and_48_data_cells: code 0xA5A50F0F has row 1 = W B W B B W B W.
  const y = new Uint8Array(w * h);
  paintLuma(y, w, rect, 0xa5a50f0f);
  const row1 = [...Array(8).keys()].map((c) => y[(rect.y + 30) * w + rect.x + c * 20 + 10] > 128);
  assert.deepEqual(row1, [true, false, true, false, false, true, false, true]);
});

test('refuses a blend of two codes and a blank area', () => {
  const a = new Uint8Array(w * h).fill(126);
  const b = new Uint8Array(w * h).fill(126);
  paintLuma(a, w, rect, 1000);
  paintLuma(b, w, rect, 1001 ^ 0xffff);
  const mix = a.map((v, i) => (v + b[i]) >> 1);
  assert.equal(readLuma(mix, w, rect).code, undefined);
  assert.equal(readLuma(new Uint8Array(w * h).fill(126), w, rect).code, undefined);
  assert.ok(readLuma(new Uint8Array(10), 5, rect).error);
});
