// The numbers of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), shared by Platter's
// client (this folder) and server (core/nbd-server). Names follow the document's.

/** proto.md "Newstyle negotiation": the first 8 bytes every server sends ("NBDMAGIC"). */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n;
/** proto.md "Newstyle negotiation": second magic of a newstyle server ("IHAVEOPT"); also the
 *  prefix of every option request. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** proto.md "Oldstyle negotiation": second magic of an oldstyle server. */
export const NBD_CLISERV_MAGIC = 0x00420281861253n;
/** proto.md "Option haggling": the magic of every option reply. */
export const NBD_REP_MAGIC = 0x3e889045565a9n;
/** proto.md "Transmission": request, simple reply and structured reply chunk magics. */
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (per export). */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_RESIZE = 1 << 9;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

/** Options (proto.md "Option types"). */
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;

/** Option reply types (proto.md "Option reply types"); errors have bit 31 set. */
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = 0x80000001;
export const NBD_REP_ERR_POLICY = 0x80000002;
export const NBD_REP_ERR_INVALID = 0x80000003;
export const NBD_REP_ERR_PLATFORM = 0x80000004;
export const NBD_REP_ERR_TLS_REQD = 0x80000005;
export const NBD_REP_ERR_UNKNOWN = 0x80000006;
export const NBD_REP_ERR_SHUTDOWN = 0x80000007;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
export const NBD_REP_ERR_TOO_BIG = 0x80000009;

/** NBD_REP_INFO types (proto.md "NBD_OPT_INFO and NBD_OPT_GO"). */
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

/** Commands (proto.md "Request types"). */
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

/** Command flags (proto.md "Command flags"). */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

/** Structured reply chunk types and flags (proto.md "Structured reply chunk message"). */
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

/** base:allocation flags; qemu:dirty-bitmap flag (proto.md "Metadata contexts", QEMU's nbd.txt). */
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;
export const NBD_STATE_DIRTY = 1 << 0;

/** Error values on the wire (proto.md "Error values") and the errno names they stand for. */
export const NBD_ERRORS: Record<number, string> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

/** The default TCP port (IANA). */
export const NBD_DEFAULT_PORT = 10809;
/** Longest export name / string QEMU sends or accepts (NBD_MAX_STRING_SIZE). */
export const NBD_MAX_STRING_SIZE = 4096;
/** Largest request payload QEMU uses and serves (NBD_MAX_BUFFER_SIZE, 32 MiB). */
export const NBD_MAX_BUFFER_SIZE = 32 * 1024 * 1024;

/** QEMU's option names in messages (nbd_opt_lookup). */
export function optName(opt: number): string {
  return (
    {
      1: 'export name',
      2: 'abort',
      3: 'list',
      4: 'peek export',
      5: 'starttls',
      6: 'info',
      7: 'go',
      8: 'structured reply',
      9: 'list meta context',
      10: 'set meta context',
    }[opt] ?? '<unknown>'
  );
}
