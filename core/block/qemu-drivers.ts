// The block driver names QEMU 7.2 knows (qapi/block-core.json BlockdevDriver, as Debian builds
// it), whether or not Platter has a driver of that name: what QEMU accepts as a backing format
// when it only records the name (qemu-img create -u -F).

export const QEMU_DRIVER_NAMES: ReadonlySet<string> = new Set([
  'blkdebug', 'blklogwrites', 'blkreplay', 'blkverify', 'bochs', 'cloop', 'compress', 'copy-before-write', 'copy-on-read',
  'dmg', 'file', 'snapshot-access', 'ftp', 'ftps', 'gluster', 'host_cdrom', 'host_device', 'http', 'https', 'io_uring',
  'iscsi', 'luks', 'nbd', 'nfs', 'null-aio', 'null-co', 'nvme', 'nvme-io_uring', 'parallels', 'preallocate', 'qcow', 'qcow2',
  'qed', 'quorum', 'raw', 'rbd', 'replication', 'ssh', 'throttle', 'vdi', 'vhdx', 'virtio-blk-vfio-pci',
  'virtio-blk-vhost-user', 'virtio-blk-vhost-vdpa', 'vmdk', 'vpc', 'vvfat',
]);

/** The QAPI error for a backing-fmt that names no driver (qcow2 and qed create). */
export function checkBackingFormatName(name: string | undefined): string | undefined {
  return name !== undefined && !QEMU_DRIVER_NAMES.has(name) ? `Parameter 'backing-fmt' does not accept value '${name}'` : undefined;
}
