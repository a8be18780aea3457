#!/usr/bin/env bash
# Builds the lottery's PostgreSQL image FROM scratch out of this machine's
# Debian packages `postgresql` 15, `pg-auto-failover-cli` (pg_autoctl) and
# `postgresql-15-auto-failover` (the monitor's extension), installed with
# apt-get if they are missing: the server binaries of
# /usr/lib/postgresql/15/bin, its modules of /usr/lib/postgresql/15/lib
# (without the LLVM JIT), /usr/share/postgresql/15 (initdb's catalog
# scripts, the extensions), /usr/bin/pg_autoctl, every shared library they
# load (by ldd), the dynamic loader, Debian's dash as /bin/sh with
# coreutils' sleep, rm, mkdir, sync and cat for the entrypoint, a passwd and
# group with the user `postgres` (999:999), and compose/postgres/
# {entrypoint.sh,monitor.conf,monitor_hba.conf,node.conf,node_hba.conf}.
# No image is pulled: the engine here cannot. `make postgres-image` runs it.
#
# All of it goes into one tar (owned by root, but for the server's own
# directories, owned by postgres), written with sorted names and fixed
# times, so the same files give the same tar and docker's build cache
# makes a second build nearly free.
#
# usage: compose/postgres/make-image.sh IMAGE [WORK_DIR]
#   IMAGE     the tag to build (e.g. lottery-postgres:latest)
#   WORK_DIR  where the tar is made (default target/postgres-image)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${1:?usage: compose/postgres/make-image.sh IMAGE [WORK_DIR]}
work=${2:-$(cd "$here/../.." && pwd)/target/postgres-image}
version=15
pgbin=/usr/lib/postgresql/$version/bin
pglib=/usr/lib/postgresql/$version/lib
pgshare=/usr/share/postgresql/$version
uid=999

say() {
    echo "make-image.sh: $*"
}

die() {
    echo "make-image.sh: $*" >&2
    exit 1
}

# A fresh machine (CI's Debian 12) may lack the packages; they are
# installed the ordinary way. The cluster Debian's package may create and
# start on the host is not used: only its files are.
packages=()
[[ -x $pgbin/postgres && -d $pgshare ]] || packages+=(postgresql)
[[ -x /usr/bin/pg_autoctl ]] || packages+=(pg-auto-failover-cli)
[[ -f $pgshare/extension/pgautofailover.control ]] || packages+=("postgresql-$version-auto-failover")
if [[ ${#packages[@]} -gt 0 ]]; then
    say "installing Debian's ${packages[*]}"
    apt=(apt-get)
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "${packages[*]} not installed and this user cannot install them: apt-get install ${packages[*]} (as root)"
        apt=(sudo apt-get)
    fi
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${packages[@]}" >/dev/null
    [[ -x $pgbin/postgres && -d $pgshare ]] || die "apt-get install postgresql gave no PostgreSQL $version in $pgbin"
    [[ -x /usr/bin/pg_autoctl ]] || die "apt-get install pg-auto-failover-cli gave no /usr/bin/pg_autoctl"
    [[ -f $pgshare/extension/pgautofailover.control ]] || die "apt-get install postgresql-$version-auto-failover gave no pgautofailover extension in $pgshare"
fi
command -v docker >/dev/null || die "no docker command"

rm -rf "$work"
mkdir -p "$work"
root=$work/root
owned=$work/owned
mkdir -p "$root" "$owned"

# Copies a host file to the same path in the image, following symlinks.
put() {
    mkdir -p "$root$(dirname "$1")"
    cp -L "$1" "$root$1"
}

put /usr/bin/dash
mkdir -p "$root/bin"
cp -L /usr/bin/dash "$root/bin/sh"
put /usr/bin/sleep
put /usr/bin/rm
put /usr/bin/mkdir
put /usr/bin/sync
put /usr/bin/cat
# initdb asks `locale -a` which collations the system has: C, C.utf8, POSIX.
put /usr/bin/locale
mkdir -p "$root/usr/lib/locale"
cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"
# pg_auto_failover's pg_autoctl runs initdb, pg_ctl, postgres,
# pg_basebackup and pg_rewind of $pgbin (first in the image's PATH); its
# monitor extension lives in $pglib and $pgshare/extension, copied below.
put /usr/bin/pg_autoctl
for dir in "$pgbin" "$pglib" "$pgshare"; do
    mkdir -p "$root$dir"
    cp -a "$dir/." "$root$dir/"
done
# The JIT would pull in all of LLVM; postgresql.conf says jit = off. The
# PGXS build files are for compiling extensions.
rm -rf "$root$pglib/bitcode" "$root$pglib/pgxs" "$root$pglib"/llvmjit*
# The man pages of the share directory are a symlink into /usr/share/man.
find "$root$pgshare" -xtype l -delete

# Every shared library any of those ELF files loads, at the path where the
# host's loader found it, and the loader itself (ldd says nothing of files
# that are not dynamic ELF objects: the scripts, the data).
libs=$(find "$root" -type f \( -perm -u+x -o -name '*.so*' \) -print0 |
    xargs -0 -n 50 ldd 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib/ {print $1}' | sort -u)
[[ -n $libs ]] || die "ldd found no shared libraries: is this a glibc system?"
for lib in $libs; do
    # The image has no /etc/ld.so.cache: only the loader's built-in
    # directories are searched.
    case $(dirname "$lib") in
    /lib64 | /lib/x86_64-linux-gnu | /usr/lib/x86_64-linux-gnu) ;;
    *) die "$lib is outside the loader's default directories" ;;
    esac
    put "$lib"
done

# The time zone the server runs in (postgresql.conf: UTC); Debian's server
# reads the system's zoneinfo.
put /usr/share/zoneinfo/UTC
mkdir -p "$root/usr/share/zoneinfo/Etc"
cp -L /usr/share/zoneinfo/UTC "$root/usr/share/zoneinfo/Etc/UTC"

mkdir -p "$root/etc"
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
postgres:x:$uid:$uid:PostgreSQL:/var/lib/postgresql:/bin/sh
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
postgres:x:$uid:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
mkdir -p "$root/etc/postgresql"
cp "$here/monitor.conf" "$here/monitor_hba.conf" "$here/node.conf" "$here/node_hba.conf" "$root/etc/postgresql/"
cp "$here/entrypoint.sh" "$root/entrypoint"
chmod 755 "$root/entrypoint"
mkdir -p "$root/tmp" "$root/dev" "$root/proc" "$root/sys"
chmod 1777 "$root/tmp"

# The server's own directories: the volume (the cluster and pg_autoctl's
# files are made inside it) and the local socket's directory.
mkdir -p "$owned/var/lib/postgresql" "$owned/var/run/postgresql"
chmod 700 "$owned/var/lib/postgresql"
chmod 2775 "$owned/var/run/postgresql"

tar_flags=(--format=gnu --sort=name --mtime=@0 --numeric-owner)
tar -cf "$work/rootfs.tar" "${tar_flags[@]}" --owner=0 --group=0 -C "$root" .
tar -rf "$work/rootfs.tar" "${tar_flags[@]}" --owner=$uid --group=$uid -C "$owned" \
    ./var/lib/postgresql ./var/run/postgresql
rm -rf "$root" "$owned"
cp "$here/Dockerfile" "$work/Dockerfile"
say "$(du -h "$work/rootfs.tar" | cut -f1) of files from $(dpkg-query -W -f '${Package} ${Version}, ' postgresql-$version pg-auto-failover-cli postgresql-$version-auto-failover 2>/dev/null || echo "PostgreSQL $version and pg_auto_failover")"
docker build --quiet -t "$image" "$work" >/dev/null
say "built $image"
