#!/usr/bin/env bash
# Fuzzes signet's input parsers with cargo-fuzz (libFuzzer); the targets are in fuzz/.
#
#   scripts/fuzz.sh                      short run: every target ${FUZZ_SECONDS:-20} s (CI, via
#                                        tests/it/fuzz_short.rs with SIGNET_FUZZ=1)
#   FUZZ_SECONDS=600 scripts/fuzz.sh     the longer run: 10 minutes per target (~110 minutes)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh glob image_reference    only some targets
#
# Seed corpora are generated into a temporary folder from ../shared/fixtures (AdmissionReviews,
# policies, CUE policies and their inputs, trusted roots), deploy/examples and keys/certificates
# made with openssl (the CUE seeds need python3 with PyYAML: $SIGNET_PYTHON or python3); fixtures
# are never copied into the repository. Set FUZZ_CORPUS=DIR to keep the grown corpora in DIR
# across runs (a longer run then continues where the last stopped).
#
# Any crash, panic, timeout (> FUZZ_TIMEOUT s per input) or out-of-memory fails the script.
# The failing input is kept in fuzz/artifacts/TARGET/ (git-ignored) and printed as base64;
# reproduce it with `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-…`
# (from the repo root), minimise it with `cargo fuzz tmin`, then add it to
# tests/it/fuzz_regressions.rs.
#
# Other settings: FUZZ_TARGET_DIR (build cache, default ~/.cache/signet-fuzz-target, kept so
# a second run builds nothing), FUZZ_JOBS (cargo build jobs), SIGNET_FIXTURES.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/signet-fuzz-target}"
FIXTURES="${SIGNET_FIXTURES:-$REPO/../shared/fixtures}"
ALL_TARGETS=(admission_review image_reference glob policy_yaml trusted_root_json public_key_pem certificate_pem
    simplesigning_payload sigstore_bundle registry_client cue_policy)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

log() { echo "fuzz: $*" >&2; }

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module, ...); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
SEEDS="$WORK/seeds"
for target in "${ALL_TARGETS[@]}"; do mkdir -p "$SEEDS/$target"; done

# --- seed corpora -------------------------------------------------------------------------
seed() { # seed TARGET < content
    cat >"$(mktemp "$SEEDS/$1/seed-XXXXXXXX")"
}
copy_seeds() { # copy_seeds TARGET FILE...: the files that exist
    local target="$1" f
    shift
    for f in "$@"; do
        if [ -f "$f" ]; then cp "$f" "$SEEDS/$target/"; fi
    done
}

if [ -d "$FIXTURES/admission-review" ]; then
    for f in "$FIXTURES"/admission-review/*.json; do
        cp "$f" "$SEEDS/admission_review/$(basename "$f")"
        # kubewarden's files are bare AdmissionRequests: wrapped ones reach the handler.
        if ! grep -q '"AdmissionReview"' "$f"; then
            { printf '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":'; cat "$f"; printf '}'; } |
                seed admission_review
        fi
    done
    grep -ho '"image" *: *"[^"]*"' "$FIXTURES"/admission-review/*.json | sed 's/^"image" *: *"//; s/"$//' |
        sort -u | while IFS= read -r image; do printf '%s' "$image" | seed image_reference; done
else
    log "no fixtures at $FIXTURES/admission-review; using built-in seeds only"
fi
cp deploy/examples/requests/*.json "$SEEDS/admission_review/"

for image in nginx nginx:1.27 library/nginx docker.io/library/nginx:latest index.docker.io/nginx \
    registry-1.docker.io/library/busybox GHCR.io/org/app:v1 ghcr.io/org/app:v1 localhost/app \
    localhost:5000/a/b/c:tag 127.0.0.1:5000/demo/app:v1 '[::1]:5000/app:v1' 'quay.io/a/b__c/d-e.f:1.0-rc_1' \
    "ghcr.io/org/app@sha256:$(printf '%064d' 0)" "ghcr.io/org/app:v1@sha256:$(printf '%064d' 1)" \
    "ghcr.io/org/app@sha512:$(printf '%0128d' 2)" evil.example.com/x:1 registry.example.com/team-a/app \
    'ghcr.io/UPPER/case' 'a:b:c' '@sha256:' 'host:99999/x'; do
    printf '%s' "$image" | seed image_reference
done

globs=('**' '*' '*/*' 'ghcr.io/**' 'ghcr.io/*/*' 'docker.io/library/nginx*' 'GHCR.IO/org/**' 'ghcr.io/foo:v1*'
    'index.docker.io/library/*' "ghcr.io/foo@sha256:$(printf '%064d' 0)" 'localhost:5000/**' 'quay.io/prometheus/**')
if [ -d "$FIXTURES/policy-controller" ]; then
    mapfile -t more < <(grep -hoE 'glob: *"?[^" ]+' "$FIXTURES"/policy-controller/*.yaml deploy/examples/*.yaml |
        sed -E 's/glob: *"?//' | sort -u)
    globs+=("${more[@]}")
fi
for glob in "${globs[@]}"; do
    printf '%s\nnginx\nghcr.io/org/app:v1\nlocalhost:5000/a/b:c\nghcr.io/foo:v1@sha256:%064d' "$glob" 0 | seed glob
done

copy_seeds policy_yaml deploy/examples/*.yaml "$FIXTURES"/policy-controller/*.yaml
copy_seeds trusted_root_json trust/*.json "$FIXTURES"/sigstore-conformance/trusted_root*.json
# Every conformance bundle, each under its case name (they are all bundle.sigstore.json).
for f in "$FIXTURES"/sigstore-conformance/bundle-verify/*/bundle.sigstore.json; do
    if [ -f "$f" ]; then cp "$f" "$SEEDS/sigstore_bundle/$(basename "$(dirname "$f")").json"; fi
done
copy_seeds simplesigning_payload "$FIXTURES"/sigstore-conformance/statement.json
digest="sha256:$(printf '%064d' 0)"
printf '{"critical":{"identity":{"docker-reference":"ghcr.io/org/app"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' "$digest" |
    seed simplesigning_payload
printf '{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"%s"},"type":"Cosign Container Image Signature"},"optional":{"env":"prod","n":1,"o":{"x":[true]}}}' "$digest" |
    seed simplesigning_payload
printf '{"critical":{"type":"atomic container signature","image":{}}}' | seed simplesigning_payload

if command -v openssl >/dev/null; then
    keys="$WORK/keys"
    mkdir -p "$keys"
    (
        cd "$keys"
        openssl ecparam -name prime256v1 -genkey -noout -out p256.key 2>/dev/null
        openssl ecparam -name secp384r1 -genkey -noout -out p384.key 2>/dev/null
        openssl genpkey -algorithm ed25519 -out ed25519.key 2>/dev/null
        openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 -out rsa.key 2>/dev/null
        openssl ecparam -name secp521r1 -genkey -noout -out p521.key 2>/dev/null
        for key in p256 p384 ed25519 rsa p521; do
            openssl pkey -in "$key.key" -pubout -out "$key.pub" 2>/dev/null
            openssl pkey -in "$key.key" -pubout -outform DER -out "$key.der" 2>/dev/null
        done
        # A root, an intermediate and a leaf, for ca-cert chains.
        openssl req -x509 -new -key p256.key -subj /CN=root -days 365 -out root.pem \
            -addext basicConstraints=critical,CA:TRUE 2>/dev/null
        openssl req -new -key p384.key -subj /CN=intermediate -out inter.csr 2>/dev/null
        printf 'basicConstraints=critical,CA:TRUE\n' >ca.ext
        openssl x509 -req -in inter.csr -CA root.pem -CAkey p256.key -CAcreateserial -days 365 \
            -extfile ca.ext -out inter.pem 2>/dev/null
        openssl req -new -key ed25519.key -subj /CN=leaf -out leaf.csr 2>/dev/null
        openssl x509 -req -in leaf.csr -CA inter.pem -CAkey p384.key -CAcreateserial -days 365 -out leaf.pem 2>/dev/null
    ) || log "openssl could not make every key and certificate seed"
    copy_seeds public_key_pem "$keys"/*.pub "$keys"/*.der
    copy_seeds certificate_pem "$keys/root.pem"
    if [ -f "$keys/leaf.pem" ]; then
        cat "$keys/inter.pem" "$keys/root.pem" | seed certificate_pem
        cat "$keys/leaf.pem" "$keys/inter.pem" "$keys/root.pem" | seed certificate_pem
        cat "$keys/root.pem" "$keys/p256.pub" | seed certificate_pem
    fi
else
    log "openssl not found: no key and certificate seeds"
fi
# Certificates and keys of the trusted roots (base64 DER in rawBytes), as PEM.
if command -v jq >/dev/null; then
    for f in "$SEEDS"/trusted_root_json/*.json; do
        jq -r '.certificateAuthorities[]?.certChain.certificates | map(.rawBytes) | join(" ")' "$f" 2>/dev/null |
            while read -r -a chain; do
                for der in "${chain[@]}"; do
                    printf -- '-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n' "$(printf '%s' "$der" | fold -w 64)"
                done | seed certificate_pem
            done
        jq -r '(.tlogs + .ctlogs)[]?.publicKey.rawBytes' "$f" 2>/dev/null | sort -u | while read -r der; do
            printf -- '-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n' "$(printf '%s' "$der" | fold -w 64)" |
                seed public_key_pem
        done
    done
fi
# CUE policies (cue_policy: policy text, NUL, input JSON; a policy alone runs on {}): every
# *.cue file and the data of every `type: cue` policy in the ClusterImagePolicies of the
# fixtures, each alone and with every statement and CIP-level input of the fixtures (the ones
# it is written for pass, the others conflict), and the policy/input pairs of cosign's
# TestValidationJSON table and of the inline policies in cases.json.
printf 'predicate: builder: id: "2"\n' | seed cue_policy
printf 'import "strings"\n#D: {a: int | *1, b?: =~"^x", ...}\nx: #D & {a: 2, b: "x\\(x.a)"}\nif x.a > 0 {y: len([1, 2]) + 1}\nz: strings.HasPrefix(x.b, "x")\n\0{"x":{"a":2,"b":"x2"}}' |
    seed cue_policy
printf 'import "time"\nlet t = time.Parse(time.RFC3339, "2022-01-01T00:00:00Z")\npredicate: Timestamp: <t & !=""\nn: >=1 & <=10 | null\n\0{"predicate":{"Timestamp":"2021-01-01T00:00:00Z"},"n":null}' |
    seed cue_policy
cue_python=""
for python in "${SIGNET_PYTHON:-}" python3; do
    if [ -n "$python" ] && "$python" -c 'import yaml' 2>/dev/null; then
        cue_python="$python"
        break
    fi
done
if [ -d "$FIXTURES/cue-policies" ] && [ -n "$cue_python" ]; then
    "$cue_python" - "$FIXTURES" "$SEEDS/cue_policy" <<'EOF' || log "could not make every cue_policy seed"
import glob, json, os, sys
import yaml

fixtures, out = sys.argv[1], sys.argv[2]
cue = os.path.join(fixtures, "cue-policies")

def seed(policy, data=None):
    seed.count += 1
    with open(os.path.join(out, "fixture-%04d" % seed.count), "wb") as f:
        f.write(policy.encode())
        if data is not None:
            f.write(b"\0" + data)
seed.count = 0

def cue_data(node):
    """The data of every {type: cue, data: TEXT} policy in a document."""
    if isinstance(node, dict):
        if node.get("type") == "cue" and isinstance(node.get("data"), str):
            yield node["data"]
        for value in node.values():
            yield from cue_data(value)
    elif isinstance(node, list):
        for value in node:
            yield from cue_data(value)

def read(path):
    with open(os.path.join(cue, path), "rb") as f:
        return f.read()

policies = {}  # a dict: in order, without duplicates
for path in sorted(glob.glob(os.path.join(cue, "**", "*.cue"), recursive=True)):
    policies[read(path).decode()] = None
for root in (cue, os.path.join(fixtures, "policy-controller")):
    for path in sorted(glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)):
        try:
            documents = list(yaml.safe_load_all(read(path)))
        except yaml.YAMLError:
            continue
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == "ClusterImagePolicy":
                policies.update(dict.fromkeys(cue_data(document)))
inputs = [read(path) for pattern in ("derived-inputs/*.json", "cosign/*.statement.json")
          for path in sorted(glob.glob(os.path.join(cue, pattern)))]
for policy in policies:
    seed(policy)
    for data in inputs:
        seed(policy, data)
vectors = json.loads(read("cosign/cue_test-vectors.json"))
for case in vectors["cases"]:
    seed(case["policy"], vectors["bodies_raw"][case["json_body"]].encode())
for case in json.loads(read("cases.json"))["cases"]:
    if case.get("policy_type") == "cue" and "policy_inline" in case and case["input"].endswith(".json"):
        seed(case["policy_inline"], read(case["input"]))
print("fuzz: cue_policy: %d policies from the fixtures, %d inputs" % (len(policies), len(inputs)), file=sys.stderr)
EOF
else
    log "no fixtures at $FIXTURES/cue-policies or no python3 with PyYAML: built-in cue_policy seeds only"
fi
# Registry responses (raw HTTP, separated by "\n=====\n"; {HOST} is the server): the same
# ordinary and hostile answers as support::scripted_registry::seed_scripts.
sep=$'\n=====\n'
d="sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ok_digest=$'HTTP/1.1 200 OK\r\ndocker-content-digest: '"$d"$'\r\ncontent-length: 2\r\n\r\n{}'
bearer=$'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm="http://{HOST}/token",service="s",scope="repository:demo/app:pull"\r\ncontent-length: 0\r\n\r\n'
token() { printf 'HTTP/1.1 200 OK\r\ncontent-length: %s\r\n\r\n%s' "${#1}" "$1"; }
printf '%s' "$ok_digest" | seed registry_client
printf '%s' $'HTTP/1.1 429 Too Many Requests\r\nretry-after: 18446744073709551615\r\n\r\n' | seed registry_client
printf '%s%s%s' $'HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\n\r\n' "$sep" "$ok_digest" | seed registry_client
printf '%s%s%s%s%s' "$bearer" "$sep" "$(token '{"token":"t","expires_in":18446744073709551615}')" "$sep" "$ok_digest" |
    seed registry_client
printf '%s%s%s' "$bearer" "$sep" "$(token '{"access_token":"t","expires_in":-1}')" | seed registry_client
printf '%s%s%s' $'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm="r"\r\n\r\n' "$sep" "$ok_digest" |
    seed registry_client
printf '%s%s%s' $'HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{HOST}/v2/x\r\n\r\n' "$sep" "$ok_digest" |
    seed registry_client
printf '%s' $'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n{}' | seed registry_client
printf '%s' $'HTTP/1.1 500 Internal Server Error\r\n\r\n{"errors":[{"code":"X","message":"boom"}]}' | seed registry_client
printf '%s' $'HTTP/1.1 200 OK\r\ncontent-length: 86\r\n\r\n{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}' |
    seed registry_client

for target in "${TARGETS[@]}"; do
    if [ ! -d "$SEEDS/$target" ]; then
        log "unknown target $target (known: ${ALL_TARGETS[*]})"
        exit 2
    fi
    log "$target: $(find "$SEEDS/$target" -type f | wc -l) seeds"
done

# --- build --------------------------------------------------------------------------------
# 16 codegen units: a much faster cold build for slightly slower targets.
# No sanitizer: signet and its Rust dependencies are memory-safe code (signet forbids
# unsafe), so ASan would only slow the fuzzing; panics, hangs and OOMs are what is hunted.
started=$(date +%s)
log "building the fuzz targets (cache: $FUZZ_TARGET_DIR)"
build_args=(-s none --codegen-units 16 --target-dir "$FUZZ_TARGET_DIR")
if [ -n "${FUZZ_JOBS:-}" ]; then build_args+=(--jobs "$FUZZ_JOBS"); fi
cargo fuzz build "${build_args[@]}" >&2
log "built in $(($(date +%s) - started)) s"
BIN_DIR="$FUZZ_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

# --- run ----------------------------------------------------------------------------------
max_len() {
    case "$1" in
        admission_review | trusted_root_json | sigstore_bundle) echo 65536 ;;
        policy_yaml | certificate_pem | cue_policy) echo 16384 ;;
        glob) echo 1024 ;;
        *) echo 4096 ;;
    esac
}

failed=()
summary=()
for target in "${TARGETS[@]}"; do
    corpus="${FUZZ_CORPUS:+$FUZZ_CORPUS/$target}"
    corpus="${corpus:-$WORK/corpus/$target}"
    artifacts="$REPO/fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    log "running $target for $FUZZ_SECONDS s"
    output="$WORK/$target.log"
    status=0
    "$BIN_DIR/$target" "$corpus" "$SEEDS/$target" \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 \
        -max_len="$(max_len "$target")" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$output" 2>&1 || status=$?
    # `|| true`: a target that crashes at once prints no stats, and under pipefail an empty
    # grep would end the script here, before it shows the crash.
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$output" | tail -1 || true)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$output" | tail -1 || true)
    cov=$(grep -oE 'cov: [0-9]+' "$output" | tail -1 | cut -d' ' -f2 || true)
    summary+=("$(printf '%-22s %8s s %10s runs %8s exec/s  cov %s  %s' "$target" "$FUZZ_SECONDS" "${runs:-?}" \
        "${rate:-?}" "${cov:-?}" "$([ "$status" -eq 0 ] && echo ok || echo "FAILED ($status)")")")
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        log "$target FAILED (exit $status); the end of its output:"
        tail -n 60 "$output" >&2
        for crash in $(grep -oE "Test unit written to [^ ]+" "$output" | awk '{print $5}'); do
            [ -f "$crash" ] || continue
            log "input $crash ($(wc -c <"$crash") bytes), base64:"
            base64 -w 0 "$crash" | head -c 4096 >&2
            echo >&2
        done
    fi
done

echo "fuzz summary (${FUZZ_SECONDS} s per target, build and run $(($(date +%s) - started)) s):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz: no crash in ${#TARGETS[@]} targets"
