// SendTargets discovery (RFC 7143 section 12.3 and appendix C): a Discovery session's text
// request "SendTargets=All", answered by TargetName keys each followed by its TargetAddress
// keys ("host:port,portal-group-tag"). For the GUI's "browse a portal" and for tests.

import { BlockError } from '../../errors.ts';
import { IscsiSession, type HeaderDigest } from './session.ts';
import { DEFAULT_INITIATOR_NAME, parsePortal } from './options.ts';

export interface DiscoveredTarget {
  /** The target's IQN (or EUI/NAA name). */
  name: string;
  /** Its portals as the target reports them ("10.0.0.1:3260,1"). */
  addresses: string[];
}

export interface DiscoveryOptions {
  initiatorName?: string;
  user?: string;
  /** CHAP secret; the caller owns it (and clears it). */
  password?: Buffer;
  headerDigest?: HeaderDigest;
  /** Connect + login + answer limit in ms (default 30 s). */
  timeoutMs?: number;
}

/** Ask the portal ("host[:port]") which targets it offers. */
export async function discoverTargets(portal: string, options: DiscoveryOptions = {}): Promise<DiscoveredTarget[]> {
  const { host, port } = parsePortal(portal);
  const timeoutMs = options.timeoutMs ?? 30_000;
  let session: IscsiSession;
  try {
    session = await IscsiSession.open({
      host,
      port,
      initiatorName: options.initiatorName ?? DEFAULT_INITIATOR_NAME,
      sessionType: 'Discovery',
      ...(options.user !== undefined ? { user: options.user } : {}),
      ...(options.password ? { password: options.password } : {}),
      headerDigest: options.headerDigest ?? 'none-crc32c',
      commandTimeoutMs: timeoutMs,
      loginTimeoutMs: timeoutMs,
    });
  } catch (e) {
    throw e instanceof BlockError ? new BlockError(e.kind, `iSCSI: discovery at ${portal} failed: ${e.message}`) : e;
  }
  try {
    const keys = await session.text([['SendTargets', 'All']]);
    const out: DiscoveredTarget[] = [];
    for (const [k, v] of keys) {
      if (k === 'TargetName') out.push({ name: v, addresses: [] });
      else if (k === 'TargetAddress' && out.length) out[out.length - 1]!.addresses.push(v);
    }
    return out;
  } finally {
    await session.logout();
  }
}
