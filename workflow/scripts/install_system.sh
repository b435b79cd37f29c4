#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those that are missing (idempotent).
set -euo pipefail
need=()
/usr/bin/python3 -c "import dolfinx, mpi4py, petsc4py" 2>/dev/null \
    || need+=(python3-dolfinx-real python3-mpi4py python3-petsc4py-real openmpi-bin python3-venv)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "Installing system packages: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
