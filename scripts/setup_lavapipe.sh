# shellcheck shell=bash
# A Vulkan CPU device for SAPIEN 3 / ManiSkill3 on machines without a GPU: lavapipe from Debian
# bookworm-backports Mesa, unpacked under .lavapipe/ (git-ignored), no system packages changed.
#
#   source scripts/setup_lavapipe.sh [DEST_DIR]      # exports VK_ICD_FILENAMES and LD_LIBRARY_PATH
#
# Why backports: Debian 12's own mesa-vulkan-drivers (22.3.6) is too old, SAPIEN answers
# 'Failed to find a supported physical device "cpu"'; lavapipe needs Mesa >= 24.3.
# The Vulkan loader: the system's libvulkan1 if installed, otherwise SAPIEN's bundled
# libvulkan.so.1.3.224, which SAPIEN picks up by itself (with a warning); both work with this ICD,
# so libvulkan1 is not needed.
# Idempotent: the debs are downloaded once (cached in DEST_DIR/debs), unpacked once, and the paths
# are exported only if not already there. On a machine with an NVIDIA driver it does nothing (the GPU
# has its own Vulkan device) unless REPPO_FORCE_LAVAPIPE=1.
# Safe to source from `set -euo pipefail` scripts: it never changes the caller's shell options, and
# returns non-zero (with a message) if it cannot provide the device.

_reppo_lavapipe() {
    local dest=${1:-$PWD/.lavapipe}
    if [ "${REPPO_FORCE_LAVAPIPE:-0}" != 1 ] && nvidia-smi >/dev/null 2>&1; then
        echo "setup_lavapipe: NVIDIA driver present, using the GPU's Vulkan device"
        return 0
    fi
    mkdir -p "$dest" && dest=$(cd "$dest" && pwd) || return 1
    local apt=$dest/apt lib=$dest/root/usr/lib/x86_64-linux-gnu
    if [ ! -f "$dest/root/.complete" ]; then
        if ! ls "$dest"/debs/mesa-vulkan-drivers_*.deb >/dev/null 2>&1; then
            mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dest/debs"
            # The Debian mirror this machine's apt already uses; only the suite differs.
            local mirror
            mirror=$(grep -h -m1 -E '^URIs: .*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
                     | head -n1 | awk '{print $2}')
            if [ -z "$mirror" ]; then
                mirror=$(grep -h -m1 -E '^deb .*/debian/? bookworm' /etc/apt/sources.list 2>/dev/null \
                         | head -n1 | awk '{print $2}')
            fi
            mirror=${mirror:-http://deb.debian.org/debian}
            local keyring=""
            [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
                && keyring="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            echo "deb ${keyring}${mirror} bookworm-backports main" > "$apt/sources.list"
            local -a opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=-"
                           -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
                           -o "APT::Sandbox::User=root")
            apt-get "${opts[@]}" update -qq || { echo "setup_lavapipe: apt-get update failed" >&2; return 1; }
            (cd "$dest/debs" && apt-get "${opts[@]}" download -qq mesa-vulkan-drivers/bookworm-backports \
                libdrm2/bookworm-backports libdrm-amdgpu1/bookworm-backports) \
                || { echo "setup_lavapipe: downloading Mesa from bookworm-backports failed" >&2; return 1; }
        fi
        rm -rf "$dest/root" && mkdir -p "$dest/root" || return 1
        local deb
        for deb in "$dest"/debs/*.deb; do
            dpkg -x "$deb" "$dest/root" || { echo "setup_lavapipe: cannot unpack $deb" >&2; return 1; }
        done
        # The packaged ICD names the library by its system path; point it into our tree.
        sed "s#\"library_path\": \"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
            "$dest/root/usr/share/vulkan/icd.d/lvp_icd.json" > "$dest/lvp_icd.json" || return 1
        touch "$dest/root/.complete"
    fi
    # lavapipe links the system's LLVM 15, xcb and wayland client libraries (Debian 12 names:
    # libllvm15 libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
    # libx11-xcb1 libxshmfence1 libwayland-client0 libelf1 libexpat1 libzstd1; .ci/run installs any
    # that are missing).
    local missing
    missing=$(LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$lib/libvulkan_lvp.so" 2>&1 \
              | awk '/not found/ {print $1}' | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "setup_lavapipe: lavapipe needs system libraries that are missing: $missing" >&2
        return 1
    fi
    case ":${LD_LIBRARY_PATH:-}:" in
        *":$lib:"*) ;;
        *) export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ;;
    esac
    export VK_ICD_FILENAMES=$dest/lvp_icd.json
    echo "setup_lavapipe: lavapipe ready, VK_ICD_FILENAMES=$VK_ICD_FILENAMES"
}

_reppo_lavapipe "$@"
_reppo_lavapipe_rc=$?
unset -f _reppo_lavapipe
# `return` when sourced (the supported use); `exit` only if someone runs it as a script.
return $_reppo_lavapipe_rc 2>/dev/null || exit $_reppo_lavapipe_rc
