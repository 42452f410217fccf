// The host and port of a URI's authority as QEMU's URI parser splits them: "[v6]:port",
// "host:port" (the last colon), or a host alone. The port is the text after the colon, unchecked.

export interface HostPort {
  host: string;
  port: string | undefined;
}

/** Split "host[:port]" / "[v6addr][:port]"; `brackets` keeps the brackets of an IPv6 host. */
export function splitHostPort(hostPort: string, brackets: boolean): HostPort {
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(hostPort);
  if (v6) return { host: brackets ? `[${v6[1]!}]` : v6[1]!, port: v6[2] };
  const colon = hostPort.lastIndexOf(':');
  return colon >= 0 ? { host: hostPort.slice(0, colon), port: hostPort.slice(colon + 1) } : { host: hostPort, port: undefined };
}
