// The renderer's Content-Security-Policy, one definition for both hosts (Electron's app: scheme
// and the browser mode's HTTP server). Scripts only from the app itself, no eval, no plugins, no
// framing; connections only to the app itself and, in browser mode, its own WebSocket endpoint.

/** The policy text. `wsEndpoint` is the browser mode's ws://127.0.0.1:PORT (omitted in Electron). */
export function contentSecurityPolicy(wsEndpoint?: string): string {
  const connect = ["'self'", ...(wsEndpoint ? [wsEndpoint] : [])].join(' ');
  return [
    "default-src 'self'",
    "script-src 'self'",
    // React and React Flow set element.style through the CSSOM, which CSP allows; the one
    // stylesheet is a file. 'unsafe-inline' for styles only: no script can run from it.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${connect}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers every response of the browser mode carries. */
export function securityHeaders(wsEndpoint?: string): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy(wsEndpoint),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    // The page URL carries the launch token: never leak it in a Referer.
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Cache-Control': 'no-store',
  };
}
