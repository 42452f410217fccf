// Types of scripts/build-cli.mjs for TypeScript callers (bench, tests).
export declare function buildCli(options?: { outDir?: string; minify?: boolean }): Promise<string>;
