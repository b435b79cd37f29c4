#!/usr/bin/env bash
# Builds (once) a Debian 13 "trixie" chroot with Debian's DOLFINx 0.9 (/usr/bin/python3) and
# PyPI's DOLFINx 0.11 (a venv in /opt/dolfinx-0.11), in which tests/test_dolfinx_modern.py runs
# fesr.fem on the DOLFINx versions that conda and cluster users get.
#
# Idempotent: the chroot lives at a fixed cache path outside the checkout,
#   ${FESR_CHROOT_CACHE:-/var/cache/fesr}/trixie-<hash of suite + package lists + recipe>
# and a complete one (marked by .fesr-complete) is reused; a changed package list gives a new
# hash, hence a new build. It builds under a temporary name and renames at the end, so an
# interrupted build leaves no half chroot under the final name (the next run removes it).
# All mounts made while building live in a private mount namespace (unshare --mount) and
# vanish with it, whatever happens.
#
# Usage: build_trixie_chroot.sh [--path]
#   (no argument)  build if missing, then print the chroot's path on the last line of stdout
#   --path         only print the path it would use (builds nothing)
# Needs root, debootstrap (a Debian package) and network access to a Debian mirror and PyPI.
# Measured on the 2-core machine: 12 min 50 s under a load average of 17 (debootstrap and apt
# alone: 6 min 42 s with less load); 2.8 GB.
set -euo pipefail

SUITE=trixie
MIRROR="${FESR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${FESR_CHROOT_CACHE:-/var/cache/fesr}"
# Bump when the build steps change in a way that changes the result.
RECIPE=1
# What fesr.fem.generate imports, Debian's DOLFINx 0.9 (with petsc4py 3.22, mpi4py 4) and
# Open MPI for multi-rank runs; pytest to run the host suite's FEM tests inside; python3-venv
# for a venv of the chroot's Python with DOLFINx 0.11 from PyPI.
PACKAGES=(
    python3-dolfinx-real python3-netcdf4 python3-xarray python3-scipy openmpi-bin
    python3-jsonschema python3-yaml python3-tqdm python3-pandas
    python3-pytest python3-pytest-timeout python3-venv ca-certificates
)
# PyPI's DOLFINx 0.11 (cp312-abi3, manylinux_2_34; it brings PETSc 3.25 and depends on the
# `mpich` wheel) in /opt/dolfinx-0.11, with what fesr.fem.generate and the tests import.
VENV=/opt/dolfinx-0.11
PIP_PACKAGES=(
    dolfinx-solver-real==0.11.0.post0 fenics-basix==0.11.0 fenics-ffcx==0.11.0
    fenics-ufl==2026.1.0 mpi4py==4.1.2 mpich==5.0.2 numpy==2.5.5 scipy==1.18.1
    netCDF4==1.7.5.1.post1 xarray==2026.9.0 pandas==3.1.1 jsonschema==4.26.0 PyYAML==6.0.4
    tqdm==4.70.1 pytest==9.2.0 pytest-timeout==2.4.0
)

hash=$(printf '%s\n' "$SUITE" "$RECIPE" "${PACKAGES[@]}" "$VENV" "${PIP_PACKAGES[@]}" \
    | sha256sum | cut -c1-12)
dest="$CACHE/$SUITE-$hash"
if [ "${1:-}" = --path ]; then
    echo "$dest"
    exit 0
fi
if [ -e "$dest/.fesr-complete" ]; then
    echo "$dest"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "building the $SUITE chroot needs root" >&2; exit 1; }
PATH="$PATH:/usr/sbin:/sbin"
command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$CACHE"

# One builder at a time per hash; a second waits and then finds the finished chroot.
exec 9>"$dest.lock"
flock 9
if [ -e "$dest/.fesr-complete" ]; then
    echo "$dest"
    exit 0
fi

# Leftovers of interrupted builds. Their mounts were in a namespace that is gone, so a plain
# rm cannot walk into a live /proc or /dev; refuse anyway if something is still mounted there.
for old in "$dest".tmp-* "$dest"; do
    [ -e "$old" ] || continue
    if findmnt -rn -o TARGET | grep -q "^$old/"; then
        echo "refusing to remove $old: something is mounted under it" >&2
        exit 1
    fi
    echo "removing incomplete $old" >&2
    rm -rf --one-file-system "$old"
done

tmp="$dest.tmp-$$"
start=$(date +%s)
echo "building $SUITE chroot in $tmp (debootstrap + ${#PACKAGES[@]} packages + a venv, ~10 min)" >&2
# pip in the chroot trusts the host's CA bundle (a TLS-intercepting proxy's CA may be only there).
host_ca="${FESR_PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
pip_env=()
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL HTTPS_PROXY https_proxy HTTP_PROXY http_proxy NO_PROXY no_proxy; do
    [ -z "${!var:-}" ] || pip_env+=("$var=${!var}")
done
# Runs a command in the chroot with /proc, /sys and /dev mounted, inside a private mount
# namespace: the mounts vanish with the command, whatever happens.
in_chroot() {
    unshare --mount --propagation private --pid --fork --kill-child -- bash -euc '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        exec chroot "$root" "$@"
    ' in-chroot "$tmp" "$@"
}
# debootstrap mounts /proc and /sys in the target itself: keep those in a namespace too.
unshare --mount --propagation private -- \
    debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" >&2
cp /etc/resolv.conf "$tmp/etc/resolv.conf"
# Veto starting services inside the chroot during the install.
printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"
chmod 755 "$tmp/usr/sbin/policy-rc.d"
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
in_chroot env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
in_chroot apt-get clean
rm -f "$tmp/usr/sbin/policy-rc.d"

in_chroot python3 -m venv "$VENV"
ca=""
if [ -f "$host_ca" ]; then
    cp "$host_ca" "$tmp/etc/fesr-host-ca.crt"
    ca=/etc/fesr-host-ca.crt
fi
in_chroot /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root ${ca:+PIP_CERT=$ca} "${pip_env[@]}" \
    "$VENV/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
    "${PIP_PACKAGES[@]}" >&2
rm -f "$tmp/etc/fesr-host-ca.crt"
printf '%s\n' "${PACKAGES[@]}" "${PIP_PACKAGES[@]}" > "$tmp/.fesr-packages"
touch "$tmp/.fesr-complete"
mv "$tmp" "$dest"
echo "built $dest in $(( $(date +%s) - start )) s" >&2
echo "$dest"
