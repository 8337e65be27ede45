# Shared by scripts/*: install what is missing, quietly, on Debian 12.
# Sourced, not run.

# apt_need PKG...: installs the Debian packages not yet installed.
apt_need() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# cargo_tool NAME CRATE [VERSION]: installs a cargo subcommand from crates.io when it is
# missing (that VERSION, when given).
cargo_tool() {
  local name=$1 crate=$2 version=${3:-}
  if ! cargo "$name" --version >/dev/null 2>&1; then
    echo "==> installing $crate${version:+ $version}"
    cargo install --locked "$crate" ${version:+--version "=$version"} </dev/null
  fi
}

# need_rust: cargo must be there (the one thing this project does not install).
need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust with rustup first (https://rustup.rs)" >&2; exit 1; }
}
