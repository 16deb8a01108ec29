// tests/input-protocol.test.mjs — input-protocol.js against the shared spec input-protocol.json
// (the host's tests/input_protocol.rs checks the Rust side against the same file): constants,
// key table, every client vector encodes to its exact bytes, every host vector decodes to its
// message, malformed host bytes fail with the spec's error kind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  VERSION, CHANNEL_PROTOCOL, MAX_TEXT_BYTES, MAX_CLIPBOARD_BYTES, CLIPBOARD_PART_BYTES, OP, HOST_OP, KEY_CODES, BUTTON,
  TOUCH_PHASE, RESIZE_STATUS, NOTICE, encode, decodeHost, keyIndex, splitText, InputProtocolError,
  clipboardMessages, ClipboardAssembler,
} from '../input-protocol.js';

const spec = JSON.parse(readFileSync(new URL('../input-protocol.json', import.meta.url), 'utf8'));

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const opcodes = (dir) => Object.fromEntries(spec[dir].map((l) => [l.name, parseInt(l.opcode, 16)]));

/** Encodes a spec message from the spec's layout alone (checks the spec against itself). */
function layoutEncode(dir, msg) {
  const layout = spec[dir].find((l) => l.name === msg.type);
  const out = [parseInt(layout.opcode, 16)];
  for (const f of layout.fields) {
    let v = msg[f.name];
    if (f.table === 'keyCodes') v = spec.keyCodes.indexOf(v);
    if (f.enum) v = spec.enums[f.enum][v];
    const b = Buffer.alloc({ u8: 1, u16: 2, i16: 2, u32: 4, f64: 8 }[f.type] ?? 0);
    switch (f.type) {
      case 'u8': b.writeUInt8(v); break;
      case 'u16': b.writeUInt16LE(v); break;
      case 'i16': b.writeInt16LE(v); break;
      case 'u32': b.writeUInt32LE(v); break;
      case 'f64': b.writeDoubleLE(v); break;
      case 'str16': case 'str32': {
        const s = Buffer.from(v, 'utf8');
        const len = Buffer.alloc(f.type === 'str16' ? 2 : 4);
        if (f.type === 'str16') len.writeUInt16LE(s.length); else len.writeUInt32LE(s.length);
        out.push(...len, ...s);
        continue;
      }
      default: throw new Error(`unknown field type ${f.type}`);
    }
    out.push(...b);
  }
  return Uint8Array.from(out);
}

/** A spec client message through the public encode API. */
const viaApi = {
  keyDown: (m) => encode.keyDown(m.code),
  keyUp: (m) => encode.keyUp(m.code),
  text: (m) => encode.text(m.text),
  keysymDown: (m) => encode.keysymDown(m.code, m.keysym),
  locks: (m) => encode.locks(m.flags),
  pointerAbs: (m) => encode.pointerAbs(m.x, m.y, m.width, m.height),
  pointerRel: (m) => encode.pointerRel(m.dx, m.dy),
  buttonDown: (m) => encode.button(BUTTON[m.button], true),
  buttonUp: (m) => encode.button(BUTTON[m.button], false),
  wheel: (m) => encode.wheel(m.dx, m.dy),
  touch: (m) => encode.touch(m.phase, m.id, m.x, m.y, m.width, m.height),
  clipboard: (m) => encode.clipboard(m.text),
  resize: (m) => encode.resize(m.width, m.height, m.dprPercent / 100),
  clipboardPart: (m) => encode.clipboardPart(m.text),
  ping: (m) => encode.ping(m.seq, m.clientTime),
  heartbeat: () => encode.heartbeat(),
  releaseAll: () => encode.releaseAll(),
};

test('constants, opcodes, enums and key table match the spec', () => {
  assert.equal(VERSION, spec.version);
  assert.equal(CHANNEL_PROTOCOL, spec.channelProtocol);
  assert.equal(MAX_TEXT_BYTES, spec.limits.maxTextBytes);
  assert.equal(MAX_CLIPBOARD_BYTES, spec.limits.maxClipboardBytes);
  assert.equal(CLIPBOARD_PART_BYTES, spec.limits.clipboardPartBytes);
  assert.deepEqual({ ...OP }, opcodes('clientToHost'));
  assert.deepEqual({ ...HOST_OP }, opcodes('hostToClient'));
  for (const op of Object.values(OP)) assert.ok(op >= 0x01 && op <= 0x3f);
  for (const op of Object.values(HOST_OP)) assert.ok(op >= 0x80 && op <= 0xbf);
  assert.deepEqual({ ...BUTTON }, spec.enums.button);
  assert.deepEqual({ ...TOUCH_PHASE }, spec.enums.touchPhase);
  assert.deepEqual({ ...RESIZE_STATUS }, spec.enums.resizeStatus);
  assert.deepEqual({ ...NOTICE }, spec.enums.notice);
  assert.deepEqual([...KEY_CODES], spec.keyCodes);
  assert.equal(new Set(KEY_CODES).size, KEY_CODES.length);
  KEY_CODES.forEach((code, i) => assert.equal(keyIndex(code), i));
  assert.deepEqual(Object.keys(viaApi), Object.keys(OP), 'every client message has an encoder');
});

test('every client vector encodes to its exact bytes', () => {
  const vectors = spec.vectors.filter((v) => v.dir === 'clientToHost');
  for (const v of vectors) {
    assert.equal(hex(layoutEncode(v.dir, v.message)), v.hex, `spec vector vs spec layout: ${JSON.stringify(v.message)}`);
    const bytes = viaApi[v.message.type](v.message);
    assert.ok(bytes instanceof Uint8Array, JSON.stringify(v.message));
    assert.equal(hex(bytes), v.hex, JSON.stringify(v.message));
  }
  for (const name of Object.keys(OP)) {
    assert.ok(vectors.some((v) => v.message.type === name), `no test vector for ${name}`);
  }
});

test('every host vector decodes to its message; every truncation and extension fails', () => {
  const vectors = spec.vectors.filter((v) => v.dir === 'hostToClient');
  for (const v of vectors) {
    assert.equal(hex(layoutEncode(v.dir, v.message)), v.hex);
    const bytes = unhex(v.hex);
    assert.deepEqual(decodeHost(bytes), v.message, v.hex);
    assert.deepEqual(decodeHost(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)), v.message);
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(() => decodeHost(bytes.subarray(0, cut)), { kind: cut === 0 ? 'empty' : 'truncated' }, `${v.hex} cut at ${cut}`);
    }
    assert.throws(() => decodeHost(Uint8Array.from([...bytes, 0])), { kind: 'trailingBytes' }, v.hex);
  }
  for (const name of Object.keys(HOST_OP)) {
    assert.ok(vectors.some((v) => v.message.type === name), `no test vector for ${name}`);
  }
});

test('invalid host vectors fail with the spec error kind', () => {
  for (const v of spec.invalid.filter((x) => x.dir === 'hostToClient')) {
    assert.ok(spec.errors.includes(v.error));
    assert.throws(() => decodeHost(unhex(v.hex)), (e) => e instanceof InputProtocolError && e.kind === v.error, `${v.hex}: ${v.why}`);
  }
  for (const op of Object.values(OP)) assert.throws(() => decodeHost(Uint8Array.of(op)), { kind: 'unknownOpcode' });
});

test('unknown notice codes are tolerated; clipboard cap is configurable', () => {
  assert.deepEqual(decodeHost(Uint8Array.of(0x83, 200)), { type: 'notice', code: 'unknown', value: 200 });
  const clip = unhex('8103000000616263');
  assert.deepEqual(decodeHost(clip, { maxClipboardBytes: 3 }), { type: 'clipboard', text: 'abc' });
  assert.throws(() => decodeHost(clip, { maxClipboardBytes: 2 }), { kind: 'tooLong' });
  // A leading BOM is text, not something to strip.
  assert.equal(decodeHost(unhex('8103000000efbbbf')).text, '\ufeff');
  // A DataView over part of a larger buffer.
  const big = new Uint8Array([9, 9, 0x83, 1, 9]);
  assert.deepEqual(decodeHost(new DataView(big.buffer, 2, 2)), { type: 'notice', code: 'viewOnly' });
});

test('long clipboard texts go as parts and join back; over the cap nothing is sent', () => {
  const text = 'aé€😀'.repeat(20000); // 200 000 bytes
  const msgs = clipboardMessages(text);
  assert.equal(msgs.length, Math.ceil(200000 / CLIPBOARD_PART_BYTES));
  const asm = new ClipboardAssembler();
  let whole = null;
  for (const [i, m] of msgs.entries()) {
    assert.ok(m.length <= CLIPBOARD_PART_BYTES + 5);
    const d = decodeHost(Uint8Array.of(m[0] === OP.clipboard ? 0x81 : 0x84, ...m.subarray(1)));
    assert.equal(d.type, i === msgs.length - 1 ? 'clipboard' : 'clipboardPart');
    if (d.type === 'clipboardPart') asm.part(d.text);
    else whole = asm.finish(d.text);
  }
  assert.equal(whole, text);
  assert.deepEqual(clipboardMessages('').map(hex), ['2000000000']);
  assert.equal(clipboardMessages('abcdef', { maxBytes: 5 }), null);
  const small = new ClipboardAssembler(5);
  small.part('abc');
  assert.equal(small.finish('def'), null);
  assert.equal(small.finish('hello'), 'hello');
});

test('values that cannot be sent give null; numbers are clamped into their fields', () => {
  assert.equal(encode.keyDown('Unidentified'), null);
  assert.equal(encode.keyUp('keya'), null);
  assert.equal(encode.button(5, true), null);
  assert.equal(encode.button(-1, false), null);
  assert.equal(hex(encode.button('right', true)), '1202');
  assert.equal(encode.touch('hover', 0, 0, 0, 1, 1), null);
  assert.equal(encode.ping(1, NaN), null);
  assert.equal(encode.text('x'.repeat(MAX_TEXT_BYTES + 1)), null);
  assert.equal(encode.text('é'.repeat(MAX_TEXT_BYTES / 2)).length, 3 + MAX_TEXT_BYTES);
  assert.equal(encode.clipboard('abc', 2), null);
  // Pointer positions land inside the video, fractions round, sizes are at least 1.
  assert.equal(hex(encode.pointerAbs(1920, -3, 1920, 1080)), hex(encode.pointerAbs(1919, 0, 1920, 1080)));
  assert.equal(hex(encode.pointerAbs(10.4, 10.6, 100, 100)), hex(encode.pointerAbs(10, 11, 100, 100)));
  assert.equal(hex(encode.pointerAbs(5, 5, 0, 0)), '1000000000010001' + '00');
  assert.equal(hex(encode.wheel(0, 1e9)), hex(encode.wheel(0, 32767)));
  assert.equal(hex(encode.pointerRel(-1e9, NaN)), hex(encode.pointerRel(-32768, -32768)));
  assert.equal(new DataView(encode.resize(1, 1, 1.1).buffer).getUint16(5, true), 110);
  assert.equal(new DataView(encode.ping(2 ** 32 + 5, 0).buffer).getUint32(1, true), 5);
});

test('splitText keeps code points whole and pieces within the cap', () => {
  assert.deepEqual(splitText(''), []);
  assert.deepEqual(splitText('abc', 2), ['ab', 'c']);
  assert.deepEqual(splitText('é😀a', 4), ['é', '😀', 'a']);
  const long = 'ü😀x'.repeat(3000);
  const pieces = splitText(long);
  assert.equal(pieces.join(''), long);
  for (const p of pieces) assert.ok(encode.text(p) !== null);
});
