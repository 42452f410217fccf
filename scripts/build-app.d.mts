// Types of scripts/build-app.mjs for TypeScript callers (the e2e tests).
export declare const ROOT: string;
export declare const DIST: string;
export declare function buildApp(options?: { only?: 'renderer' | 'electron'; minify?: boolean; outDir?: string }): Promise<{ renderer: string; electron: string }>;
