#!/usr/bin/env bash
# Installs the system packages Platter's tests use as oracles and peers (Debian/Ubuntu, as root or
# with sudo): QEMU's tools and block modules, cryptsetup, nbdkit and libnbd's tools, sshd, tgt and
# libiscsi's tools, dosfstools and mtools, bximage and cloop-utils, gnutls' certtool, GlusterFS,
# the sheepdog daemon's build tools, and Chromium for the end-to-end tests.
# Idempotent: skips apt-get when everything is already there.
set -euo pipefail
need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v cryptsetup >/dev/null 2>&1 || need+=(cryptsetup-bin)
command -v nbdkit >/dev/null 2>&1 || need+=(nbdkit)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v file >/dev/null 2>&1 || need+=(file)
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-ssh.so ] || ls /usr/lib/*/qemu/block-ssh.so >/dev/null 2>&1 || need+=(qemu-block-extra)
command -v nbdinfo >/dev/null 2>&1 || need+=(libnbd-bin)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v tgtd >/dev/null 2>&1 || [ -x /usr/sbin/tgtd ] || need+=(tgt)
command -v iscsi-inq >/dev/null 2>&1 || need+=(libiscsi-bin)
command -v fsck.fat >/dev/null 2>&1 || [ -x /usr/sbin/fsck.fat ] || need+=(dosfstools)
command -v mdir >/dev/null 2>&1 || need+=(mtools)
command -v bximage >/dev/null 2>&1 || need+=(bximage)
command -v create_compressed_fs >/dev/null 2>&1 || need+=(cloop-utils)
command -v certtool >/dev/null 2>&1 || need+=(gnutls-bin)
# GlusterFS: glusterd and the gluster CLI (the test volume), libgfapi (glusterfs-common).
command -v glusterd >/dev/null 2>&1 || [ -x /usr/sbin/glusterd ] || need+=(glusterfs-server)
# Sheepdog: QEMU 5.2's peer is built from ../shared/vendor/sheepdog (scripts/build-sheepdog.sh).
for p in gcc make autoconf automake libtool pkg-config liburcu-dev yasm; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system packages: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
