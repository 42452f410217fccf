// Types of the one seek-bzip entry point Platter calls (the package ships none).
declare module 'seek-bzip' {
  const Bunzip: {
    /** Decode a whole bzip2 stream into `output`: a Buffer of the exact decoded size, a size, or
     *  an object taking the bytes one at a time (then nothing is returned). */
    decode(input: Uint8Array, output?: Buffer | number | { writeByte(b: number): void }, multistream?: boolean): Buffer | undefined;
  };
  export default Bunzip;
}
