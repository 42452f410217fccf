// Apple Data Compression (ADC), the LZ77 variant of DMG's UDCO chunks (0x80000004), as Apple's
// UDIF images and their readers (libdmg-hfsplus adc.c, 7-Zip's DmgHandler) define it. Each code
// starts with a byte whose top bits say what follows:
//   1LLLLLLL                    a run of L+1 literal bytes
//   01LLLLLL OOOOOOOO OOOOOOOO  copy L+4 bytes from O+1 bytes back
//   00LLLLOO OOOOOOOO           copy L+3 bytes from O+1 bytes back (O is 10 bits)
// Written here rather than taken from npm: the one package (apple-data-compression) keeps its
// window in module state, has no output bound, and builds its result from per-code Buffers.

export class AdcError extends Error {
  constructor(message: string) {
    super(`adc: ${message}`);
    this.name = 'AdcError';
  }
}

/** Decode `src` to exactly `outputLength` bytes (input past that point is an error too). */
export function adcDecode(src: Uint8Array, outputLength: number): Uint8Array {
  const out = new Uint8Array(outputLength);
  let o = 0;
  let p = 0;
  while (p < src.length) {
    const b = src[p]!;
    if (b & 0x80) {
      const n = (b & 0x7f) + 1;
      if (p + 1 + n > src.length) throw new AdcError(`literal run at byte ${p} runs past the end of the data`);
      if (o + n > outputLength) throw new AdcError(`data decodes to more than ${outputLength} bytes`);
      out.set(src.subarray(p + 1, p + 1 + n), o);
      o += n;
      p += 1 + n;
      continue;
    }
    let n: number;
    let back: number;
    if (b & 0x40) {
      if (p + 3 > src.length) throw new AdcError(`code at byte ${p} is cut off`);
      n = (b & 0x3f) + 4;
      back = ((src[p + 1]! << 8) | src[p + 2]!) + 1;
      p += 3;
    } else {
      if (p + 2 > src.length) throw new AdcError(`code at byte ${p} is cut off`);
      n = ((b & 0x3c) >> 2) + 3;
      back = (((b & 0x03) << 8) | src[p + 1]!) + 1;
      p += 2;
    }
    if (back > o) throw new AdcError(`copy reaches ${back} bytes back with only ${o} decoded`);
    if (o + n > outputLength) throw new AdcError(`data decodes to more than ${outputLength} bytes`);
    if (back >= n) {
      out.copyWithin(o, o - back, o - back + n);
      o += n;
    } else {
      for (const end = o + n; o < end; o++) out[o] = out[o - back]!;
    }
  }
  if (o !== outputLength) throw new AdcError(`data decodes to ${o} bytes, expected ${outputLength}`);
  return out;
}
