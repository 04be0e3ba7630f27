# shellcheck shell=bash
#
# scripts/lib/browser.sh: what the browser suite (tests/tests/integration/browser.rs) needs,
# installed when missing. Sourced by scripts/test; call browser_setup.
#
#   - Debian's headless Chromium and its chromedriver (apt packages `chromium`,
#     `chromium-driver`), installed only when /usr/bin/chromium or
#     /usr/bin/chromedriver is missing; `apt-get update` only when the package
#     lists do not know them yet.
#   - axe-core from npm, pinned by tests/browser/package.json +
#     package-lock.json, installed with `npm ci` into tests/browser/node_modules
#     (gitignored); skipped when the locked version is already there.
#
# Exports for the test:
#   RESTDOSE_TEST_CHROMIUM     path of the chromium binary
#   RESTDOSE_TEST_CHROMEDRIVER path of chromedriver
#   RESTDOSE_TEST_AXE_JS       path of axe.min.js
#
# Environment (optional):
#   RESTDOSE_TEST_CHROMIUM / RESTDOSE_TEST_CHROMEDRIVER already set: used as
#   they are, nothing is installed for them.

browser_setup() {
    local root="$1"
    local chromium="${RESTDOSE_TEST_CHROMIUM:-/usr/bin/chromium}"
    local driver="${RESTDOSE_TEST_CHROMEDRIVER:-/usr/bin/chromedriver}"

    if [[ ! -x "$chromium" || ! -x "$driver" ]]; then
        echo "installing Debian chromium + chromium-driver (missing: $([[ -x $chromium ]] || echo "$chromium ")$([[ -x $driver ]] || echo "$driver"))"
        local sudo=()
        if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
        if ! apt-cache show chromium chromium-driver >/dev/null 2>&1; then
            "${sudo[@]}" apt-get update
        fi
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends chromium chromium-driver
    fi
    [[ -x "$chromium" ]] || { echo "error: $chromium still missing after install" >&2; return 1; }
    [[ -x "$driver" ]] || { echo "error: $driver still missing after install" >&2; return 1; }
    echo "chromium: $("$chromium" --version 2>/dev/null || echo '?')"
    echo "chromedriver: $("$driver" --version 2>/dev/null || echo '?')"

    local dir="$root/tests/browser"
    local want have
    want=$(node -e 'console.log(require(process.argv[1]).packages["node_modules/axe-core"].version)' \
        "$dir/package-lock.json")
    have=$(node -e 'try { console.log(require(process.argv[1]).version) } catch (e) { console.log("") }' \
        "$dir/node_modules/axe-core/package.json" 2>/dev/null || true)
    if [[ "$have" != "$want" ]]; then
        echo "installing axe-core $want (npm ci in tests/browser)"
        (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
    fi
    local axe="$dir/node_modules/axe-core/axe.min.js"
    [[ -f "$axe" ]] || { echo "error: $axe missing after npm ci" >&2; return 1; }
    echo "axe-core: $want"

    export RESTDOSE_TEST_CHROMIUM="$chromium"
    export RESTDOSE_TEST_CHROMEDRIVER="$driver"
    export RESTDOSE_TEST_AXE_JS="$axe"
}
