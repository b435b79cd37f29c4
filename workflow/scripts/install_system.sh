#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those that are missing (idempotent:
# when everything is present it only runs a few `command -v` checks).
set -euo pipefail
have() { PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }
need=()
/usr/bin/python3 -c "import dolfinx, mpi4py, petsc4py" 2>/dev/null \
    || need+=(python3-dolfinx-real python3-mpi4py python3-petsc4py-real openmpi-bin python3-venv)
have mpirun || need+=(openmpi-bin)
# The SLURM test (tests/test_slurm.py) runs a private single-node cluster: slurmctld, slurmd,
# the client commands and plugins (pmix for srun + Open MPI, gres/gpu), munge, and
# unshare/ip to put it in its own network namespace.
for tool in slurmctld slurmd sbatch srun squeue; do
    have "$tool" || { need+=(slurm-wlm); break; }
done
[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so ] \
    || [ "$(dpkg --print-architecture 2>/dev/null)" != amd64 ] || need+=(slurm-wlm-basic-plugins)
have munged || need+=(munge)
have ip || need+=(iproute2)
have unshare || need+=(util-linux)
# tests/test_dolfinx_modern.py runs fesr.fem on DOLFINx 0.9/0.11 in a Debian 13 chroot that
# workflow/scripts/build_trixie_chroot.sh makes with debootstrap.
have debootstrap || need+=(debootstrap)
# tests/test_report_html.py looks at the HTML report in headless Chromium (with a font to draw
# its text).
have chromium || need+=(chromium fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "Installing system packages: ${need[*]}"
    # Packages with daemons (munge, slurmd, slurmctld) must not start them on this machine:
    # the tests start their own, inside a namespace. policy-rc.d vetoes starting services
    # during the install; it is removed again unless it was already there.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        added_policy=1
    fi
    cleanup() { [ "$added_policy" -eq 0 ] || $SUDO rm -f "$policy"; }
    trap cleanup EXIT
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
