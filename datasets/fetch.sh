#!/usr/bin/env bash
# Downloads the standard datasets ibotlab reads by name, verifying checksums.
#
#   bash datasets/fetch.sh fashion-mnist|mnist|cifar10|all [DEST_ROOT]
#
# Files go to DEST_ROOT/<name>/ (default: the folder this script is in, i.e.
# the package's datasets/), which is where loadDataset(<name>) looks first
# after an explicit path. Needs curl or wget, gzip, tar, md5sum and sha256sum.
# Re-running is safe: files already present and verified are kept.
#
# Checksums (a download is kept only if the sha256 of its decompressed content
# matches; the .gz md5 is checked against the published value and reported):
#   fashion-mnist  md5 of each .gz as published in the zalandoresearch/fashion-mnist
#                  README, plus sha256 of the decompressed IDX files (identical to
#                  Debian's dataset-fashion-mnist; Debian recompressed the .gz, so
#                  its .gz md5s differ but the content is byte-identical).
#   mnist          LeCun's page publishes no checksums: the md5s are the ones
#                  torchvision pins for these files, and the sha256 of the
#                  decompressed files is the value widely pinned elsewhere.
#   cifar10        md5 of cifar-10-binary.tar.gz as published on the CIFAR page.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  echo "usage: bash $0 fashion-mnist|mnist|cifar10|all [DEST_ROOT]" >&2
  echo "  downloads into DEST_ROOT/<name>/ (default DEST_ROOT: $SCRIPT_DIR)" >&2
  exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
WHAT="$1"
DEST_ROOT="${2:-$SCRIPT_DIR}"

die() { echo "fetch.sh: error: $*" >&2; exit 1; }

for tool in gzip tar md5sum sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required (Debian: apt-get install coreutils gzip tar)"
done
if command -v curl >/dev/null 2>&1; then
  download() { curl -fL --retry 3 --connect-timeout 30 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  download() { wget -q --tries=3 -O "$2" "$1"; }
else
  die "curl or wget is required (Debian: apt-get install curl)"
fi

md5_of() { md5sum "$1" | cut -d' ' -f1; }
sha256_of_gunzipped() { gzip -t "$1" 2>/dev/null || return 1; gzip -dc "$1" | sha256sum | cut -d" " -f1; }

# fetch_gz DIR FILE MD5 SHA256_DECOMPRESSED URL...
# Keeps an existing DIR/FILE whose decompressed content matches; otherwise
# tries each URL until one gives a file whose decompressed content has the
# expected sha256, then moves it into place. The sha256 of the content is
# what decides (it is the stronger hash and does not depend on how the .gz
# was compressed); the published md5 of the .gz is checked and reported too,
# so a recompressed mirror copy (like Debian's) is accepted with a note.
fetch_gz() {
  local dir="$1" file="$2" md5="$3" sha="$4"
  shift 4
  local out="$dir/$file" part="$dir/$file.part" url got
  if [ -f "$out" ] && [ "$(sha256_of_gunzipped "$out" 2>/dev/null || true)" = "$sha" ]; then
    echo "ok (already present): $out"
    return 0
  fi
  for url in "$@"; do
    echo "downloading $url"
    rm -f "$part"
    if ! download "$url" "$part"; then
      echo "  failed to download from $url" >&2
      continue
    fi
    got="$(sha256_of_gunzipped "$part" 2>/dev/null || true)"
    if [ "$got" != "$sha" ]; then
      echo "  content sha256 mismatch for $url: expected $sha, got ${got:-<not a gzip file>}" >&2
      continue
    fi
    got="$(md5_of "$part")"
    if [ "$got" = "$md5" ]; then
      echo "  md5 $got matches the published value"
    else
      echo "  note: .gz md5 $got differs from the published $md5 (recompressed copy); content verified by sha256"
    fi
    mv -f "$part" "$out"
    echo "ok: $out"
    return 0
  done
  rm -f "$part"
  die "could not get a verified copy of $file (tried: $*)"
}

fetch_fashion_mnist() {
  local dir="$DEST_ROOT/fashion-mnist"
  local base="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
  local gh="https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"
  mkdir -p "$dir"
  fetch_gz "$dir" train-images-idx3-ubyte.gz 8d4fb7e6c68d591d4c3dfef9ec88bf0d \
    c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888 \
    "$base/train-images-idx3-ubyte.gz" "$gh/train-images-idx3-ubyte.gz"
  fetch_gz "$dir" train-labels-idx1-ubyte.gz 25c81989df183df01b3e8a0aad5dffbe \
    bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9 \
    "$base/train-labels-idx1-ubyte.gz" "$gh/train-labels-idx1-ubyte.gz"
  fetch_gz "$dir" t10k-images-idx3-ubyte.gz bef4ecab320f06d8554ea6380940ec79 \
    5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b \
    "$base/t10k-images-idx3-ubyte.gz" "$gh/t10k-images-idx3-ubyte.gz"
  fetch_gz "$dir" t10k-labels-idx1-ubyte.gz bb300cfdad3c16e7a12a480ee83cd310 \
    0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34 \
    "$base/t10k-labels-idx1-ubyte.gz" "$gh/t10k-labels-idx1-ubyte.gz"
}

fetch_mnist() {
  local dir="$DEST_ROOT/mnist"
  # LeCun's site often refuses automated downloads; torchvision's mirror first.
  local mirror="https://ossci-datasets.s3.amazonaws.com/mnist"
  local lecun="http://yann.lecun.com/exdb/mnist"
  mkdir -p "$dir"
  fetch_gz "$dir" train-images-idx3-ubyte.gz f68b3c2dcbeaaa9fbdd348bbdeb94873 \
    ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db \
    "$mirror/train-images-idx3-ubyte.gz" "$lecun/train-images-idx3-ubyte.gz"
  fetch_gz "$dir" train-labels-idx1-ubyte.gz d53e105ee54ea40749a09fcbcd1e9432 \
    65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 \
    "$mirror/train-labels-idx1-ubyte.gz" "$lecun/train-labels-idx1-ubyte.gz"
  fetch_gz "$dir" t10k-images-idx3-ubyte.gz 9fb629c4189551a2d022fa330f9573f3 \
    0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7 \
    "$mirror/t10k-images-idx3-ubyte.gz" "$lecun/t10k-images-idx3-ubyte.gz"
  fetch_gz "$dir" t10k-labels-idx1-ubyte.gz ec29112dd5afa0611ce80d1b7f02629c \
    ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2 \
    "$mirror/t10k-labels-idx1-ubyte.gz" "$lecun/t10k-labels-idx1-ubyte.gz"
}

fetch_cifar10() {
  local dir="$DEST_ROOT/cifar10"
  local url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
  local md5="c32a1d4ab5d03f1284b67883e8d87530"
  local archive="$dir/cifar-10-binary.tar.gz" got f
  local need=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)
  mkdir -p "$dir"
  local have=1
  for f in "${need[@]}"; do
    [ -f "$dir/cifar-10-batches-bin/$f" ] || have=0
  done
  if [ "$have" = 1 ]; then
    echo "ok (already present): $dir/cifar-10-batches-bin"
    return 0
  fi
  if [ ! -f "$archive" ] || [ "$(md5_of "$archive")" != "$md5" ]; then
    echo "downloading $url (162 MB)"
    rm -f "$archive.part"
    download "$url" "$archive.part" || die "failed to download $url"
    got="$(md5_of "$archive.part")"
    [ "$got" = "$md5" ] || { rm -f "$archive.part"; die "md5 mismatch for $url: expected $md5, got $got"; }
    mv -f "$archive.part" "$archive"
  fi
  # Extract only the batch files and class names, never arbitrary paths.
  tar -xzf "$archive" -C "$dir" \
    "${need[@]/#/cifar-10-batches-bin/}" cifar-10-batches-bin/batches.meta.txt
  for f in "${need[@]}"; do
    [ "$(stat -c %s "$dir/cifar-10-batches-bin/$f")" = 30730000 ] \
      || die "$dir/cifar-10-batches-bin/$f is not 30730000 bytes (10000 records of 3073)"
  done
  if [ "${KEEP_ARCHIVE:-0}" != 1 ]; then rm -f "$archive"; fi
  echo "ok: $dir/cifar-10-batches-bin"
}

case "$WHAT" in
  fashion-mnist) fetch_fashion_mnist ;;
  mnist) fetch_mnist ;;
  cifar10) fetch_cifar10 ;;
  all) fetch_fashion_mnist; fetch_mnist; fetch_cifar10 ;;
  *) usage ;;
esac
