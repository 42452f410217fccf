// Types of the one seek-bzip entry point Platter calls (the package ships none).
declare module 'seek-bzip' {
  const Bunzip: {
    /** Decode a whole bzip2 stream into `output` (a Buffer of the exact decoded size, or a size). */
    decode(input: Uint8Array, output?: Buffer | number, multistream?: boolean): Buffer;
  };
  export default Bunzip;
}
