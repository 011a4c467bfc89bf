#!/usr/bin/env bash
# Builds the container images of mesh-proxy, mesh-runtime and meshc
# (images/<name>/Containerfile) with podman, or buildah when podman is
# missing. Each is FROM scratch: no base image is pulled. Into each build
# context's rootfs/ go the release binary and the shared libraries `ldd`
# lists for it, copied from this machine's Debian packages (each image keeps
# the package names and versions in /usr/share/meshc/packages.txt), an
# /etc/passwd and /etc/group naming the image's user, and an empty /tmp for
# the mount a read-only root filesystem needs.
#
#   scripts/build-images.sh                      # cargo build (mesh-proxy: --profile proxy, the
#                                                # others --release), then all three images
#   scripts/build-images.sh --bin-dir DIR        # binaries already built in DIR
#   scripts/build-images.sh mesh-runtime         # only the images named
#
# Images are tagged $IMAGE_REPO/<name>:<workspace version> (IMAGE_REPO
# defaults to ghcr.io/meshc, the name runtime/deploy/ uses).
set -euo pipefail
cd "$(dirname "$0")/.."

all_images=(mesh-proxy mesh-runtime meshc)
bin_dir=""
images=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        mesh-proxy|mesh-runtime|meshc) images+=("$1"); shift ;;
        *) echo "build-images.sh: unknown argument \`$1\` (--help)" >&2; exit 2 ;;
    esac
done
[ ${#images[@]} -gt 0 ] || images=("${all_images[@]}")

if command -v podman >/dev/null 2>&1; then
    builder=(podman build)
elif command -v buildah >/dev/null 2>&1; then
    builder=(buildah build)
else
    echo "build-images.sh: neither podman nor buildah is installed (apt-get install podman)" >&2
    exit 1
fi

repo="${IMAGE_REPO:-ghcr.io/meshc}"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "build-images.sh: no [workspace.package] version in Cargo.toml" >&2; exit 1; }

# The crate that holds each binary.
package_of() {
    case "$1" in
        mesh-proxy) echo mesh-proxy ;;
        mesh-runtime) echo mesh-runtime ;;
        meshc) echo meshc ;;
    esac
}

# The cargo profile each image's binary is built with: the proxy's own
# (whole-program LTO, Cargo.toml [profile.proxy]) for the proxy.
profile_of() {
    case "$1" in
        mesh-proxy) echo proxy ;;
        *) echo release ;;
    esac
}

# Where an image's binary is: --bin-dir, or the profile's output directory.
binary_of() {
    if [ -n "$bin_dir" ]; then
        echo "$bin_dir/$1"
    else
        echo "${CARGO_TARGET_DIR:-target}/$(profile_of "$1")/$1"
    fi
}

if [ -z "$bin_dir" ]; then
    for image in "${images[@]}"; do
        cargo build --profile "$(profile_of "$image")" --locked --quiet -p "$(package_of "$image")" --bin "$image"
    done
fi

# The libraries the dynamic loader resolves for a binary, and the loader
# itself, as absolute paths.
libraries_of() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}

# rootfs/ for one image: the binary, its libraries at the paths the loader
# looks them up by (the file each symlink names, copied under the link's
# path), the Debian package of each, the user, and /tmp.
make_rootfs() {
    local binary="$1" rootfs="$2" uid="$3"
    install -D -m 0755 "$binary" "$rootfs/usr/local/bin/$(basename "$binary")"
    local packages=()
    while read -r lib; do
        install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
        local package
        package=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1,2 || true)
        if [ -z "$package" ]; then
            # merged /usr: dpkg may know the library by its /lib path only
            package=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1,2 || true)
        fi
        if [ -n "$package" ]; then
            packages+=("$package $(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)")
        else
            packages+=("$lib (no Debian package)")
        fi
    done < <(libraries_of "$binary")
    mkdir -p "$rootfs/usr/share/meshc" "$rootfs/etc" "$rootfs/tmp"
    printf '%s\n' "${packages[@]}" | sort -u > "$rootfs/usr/share/meshc/packages.txt"
    printf 'root:x:0:0:root:/:/sbin/nologin\nmesh:x:%s:%s:mesh:/:/sbin/nologin\n' "$uid" "$uid" > "$rootfs/etc/passwd"
    printf 'root:x:0:\nmesh:x:%s:\n' "$uid" > "$rootfs/etc/group"
    chmod 1777 "$rootfs/tmp"
}

# The UID each Containerfile's USER names.
uid_of() {
    sed -n 's/^USER \([0-9]*\):.*/\1/p' "images/$1/Containerfile"
}

# Starts the image's binary (`--version`) in the image's own root
# filesystem as the image's user: the libraries it carries are all the
# loader needs. Through chroot rather than `podman run`, which needs a
# container runtime allowed to set rlimits and cgroups (not every CI
# container is); chroot needs root, so others skip it loudly.
check_image() {
    local tag="$1" image="$2" uid="$3"
    if [ "$(id -u)" != 0 ]; then
        echo "!!! not root: $tag NOT started (chroot needs root)"
        return
    fi
    local mnt container=""
    if [ "${builder[0]}" = podman ]; then
        mnt=$(podman image mount "$tag")
    else
        container=$(buildah from --pull=never "$tag")
        mnt=$(buildah mount "$container")
    fi
    local status=0
    chroot --userspec="$uid:$uid" "$mnt" "/usr/local/bin/$image" --version || status=$?
    if [ -n "$container" ]; then
        buildah rm "$container" >/dev/null
    else
        podman image unmount "$tag" >/dev/null
    fi
    [ "$status" = 0 ] || { echo "build-images.sh: $image does not start in its image" >&2; exit 1; }
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for image in "${images[@]}"; do
    binary=$(binary_of "$image")
    [ -x "$binary" ] || { echo "build-images.sh: no binary $binary" >&2; exit 1; }
    context="$work/$image"
    mkdir -p "$context"
    cp "images/$image/Containerfile" "$context/Containerfile"
    make_rootfs "$binary" "$context/rootfs" "$(uid_of "$image")"
    tag="$repo/$image:$version"
    echo "==> $tag ($(wc -l < "$context/rootfs/usr/share/meshc/packages.txt") Debian packages: $(cut -d' ' -f1 "$context/rootfs/usr/share/meshc/packages.txt" | tr '\n' ' '))"
    "${builder[@]}" --network=none --pull=never -t "$tag" -f "$context/Containerfile" "$context"
    check_image "$tag" "$image" "$(uid_of "$image")"
done
