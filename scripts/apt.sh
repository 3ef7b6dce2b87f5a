# Installing Debian packages that are missing, and only those: sourced by
# scripts/setup.sh and scripts/bench-setup.sh, and by the test that checks it
# (tests/cli/setup.rs). Callers set PREFIX (the name in messages) and use
# `set -euo pipefail`.

say() { printf '%s: %s\n' "${PREFIX:-setup}" "$*"; }
die() { printf '%s: error: %s\n' "${PREFIX:-setup}" "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $*"
    fi
}

# The packages of "$@" that are not installed, one per line.
missing_apt() {
    # dpkg-query prints one status line per known package; anything not "install ok installed" is
    # missing. It exits 1 when any package was never known to dpkg, which is exactly the case to
    # report, so its status is not an error here (under pipefail it would end this function
    # silently, and nothing would be reported missing).
    local installed
    installed="$({ dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true; } | awk '$NF == "installed" {print $1}')"
    local p
    for p in "$@"; do
        grep -qx "$p" <<<"$installed" || printf '%s\n' "$p"
    done
}

# Installs the packages of "$@" that are missing, and checks that they are installed after.
install_apt() {
    local missing
    mapfile -t missing < <(missing_apt "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        say "apt: ok ($*)"
        return
    fi
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    mapfile -t missing < <(missing_apt "$@")
    [ "${#missing[@]}" -eq 0 ] || die "apt could not install: ${missing[*]}"
}
