#!/usr/bin/env python3
"""Policy check of rendered Kustomize output (kubectl kustomize DIR > FILE).

kubernetes-validate checks the manifests against the Kubernetes schemas;
this checks what the schemas cannot: the things deploy/k8s promises.

Usage: k8s_check.py base|overlay RENDERED.yaml
"""

from __future__ import annotations

import sys

import yaml

ERRORS: list[str] = []


def need(cond: bool, msg: str) -> None:
    if not cond:
        ERRORS.append(msg)


def main() -> int:
    kind_of, path = sys.argv[1], sys.argv[2]
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for k in ("Namespace", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
              "ConfigMap", "NetworkPolicy", "ServiceAccount"):
        need(k in by_kind, f"no {k}")
    if ERRORS:
        print("\n".join(ERRORS))
        return 1
    ns = by_kind["Namespace"][0]["metadata"]["name"]
    for d in docs:
        if d["kind"] != "Namespace":
            need(d["metadata"].get("namespace") == ns, f"{d['kind']}/{d['metadata']['name']} not in namespace {ns}")

    dep = by_kind["Deployment"][0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
    need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccompProfile RuntimeDefault")
    need(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    need(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    need(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
    need(pod.get("automountServiceAccountToken") is False, "no service account token")
    need(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "liveness probe on /healthz")
    need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "readiness probe on /readyz")
    need("startupProbe" in c, "startupProbe (migrations at first start)")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            need(r in res.get(part, {}), f"resources.{part}.{r}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    need(ports == {"http": 8080, "metrics": 9464}, f"container ports http 8080 and metrics 9464, got {ports}")
    need(pod.get("terminationGracePeriodSeconds", 30) > 10, "terminationGracePeriodSeconds above the 10 s grace")
    ann = spec["template"]["metadata"].get("annotations", {})
    need(ann.get("prometheus.io/port") == "9464", "pod annotation prometheus.io/port: 9464")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    need(env.get("TRADECORE_SERVER__LISTEN") == "0.0.0.0:8080", "listen on 0.0.0.0:8080")
    need(env.get("TRADECORE_METRICS__LISTEN") == "0.0.0.0:9464", "metrics on 0.0.0.0:9464")
    for name in env:
        need(name.endswith("_FILE") or not any(s in name for s in ("PASSWORD", "__URL", "KEY")),
             f"{name}: secrets only through *_FILE")
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    need({"/var/lib/tradecore", "/tmp"} <= mounts, "writable /var/lib/tradecore and /tmp")
    secret_paths = {m["mountPath"] for m in c["volumeMounts"] if m["name"] == "secrets"}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    items = {i["path"] for i in volumes["secrets"]["secret"].get("items", [])}
    for name, value in env.items():
        if name.endswith("_FILE"):
            d, _, f = (value or "").rpartition("/")
            need(d in secret_paths and f in items, f"{name}={value} is not a file of the mounted secret")
    cm_names = {d["metadata"]["name"] for d in by_kind["ConfigMap"]}
    for ef in c.get("envFrom", []):
        need(ef["configMapRef"]["name"] in cm_names, f"envFrom {ef['configMapRef']['name']} does not exist")
    cm = by_kind["ConfigMap"][0]["data"]
    hpa = by_kind["HorizontalPodAutoscaler"][0]["spec"]
    cpu = [m for m in hpa["metrics"] if m.get("resource", {}).get("name") == "cpu"]
    need(bool(cpu) and cpu[0]["resource"]["target"].get("averageUtilization") == 70, "HPA on CPU 70 %")
    need(by_kind["PodDisruptionBudget"][0]["spec"].get("maxUnavailable") == 1, "PDB maxUnavailable 1")
    svc_ports = {p["name"]: p for p in by_kind["Service"][0]["spec"]["ports"]}
    need(svc_ports.get("http", {}).get("targetPort") == "http", "Service http -> container http")

    if kind_of == "base":
        need(spec.get("replicas") == 1 and hpa["maxReplicas"] == 1, "SQLite base: exactly one replica")
        need(spec["strategy"]["type"] == "Recreate", "SQLite base: Recreate (never two writers)")
        need("PersistentVolumeClaim" in by_kind and "persistentVolumeClaim" in volumes["data"],
             "SQLite base: data on a PersistentVolumeClaim")
    else:
        ru = spec["strategy"].get("rollingUpdate", {})
        need(spec["strategy"]["type"] == "RollingUpdate" and ru.get("maxUnavailable") == 1
             and ru.get("maxSurge") == 1, "rolling update maxUnavailable 1 / maxSurge 1")
        need(hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"], "HPA with real bounds")
        need(spec.get("replicas") == hpa["minReplicas"], "replicas start at the HPA minimum")
        need("PersistentVolumeClaim" not in by_kind, "no PVC with several replicas")
        need("TRADECORE_DATABASE__URL_FILE" in env and "TRADECORE_REDIS__URL_FILE" in env,
             "PostgreSQL and Redis URLs from the Secret")
        need(cm.get("TRADECORE_BACKUP__TARGET", "").startswith("s3://"), "stateless pods back up to S3")
        ingresses = by_kind.get("Ingress", [])
        need(len(ingresses) >= 1, "an Ingress")
        hosts = {r["host"] for i in ingresses for r in i["spec"]["rules"]}
        need(all(i["spec"].get("tls") for i in ingresses), "every Ingress has TLS")
        need({f"https://{h}" for h in hosts} == {cm.get("TRADECORE_SERVER__PUBLIC_ORIGINS")},
             f"public_origins {cm.get('TRADECORE_SERVER__PUBLIC_ORIGINS')} matches the Ingress hosts {hosts}")
        ws = [i for i in ingresses for r in i["spec"]["rules"] for p in r["http"]["paths"] if p["path"] == "/api/v1/ws"]
        need(bool(ws) and int(ws[0]["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-read-timeout", 0)) >= 600,
             "the WebSocket path has a long proxy-read-timeout")
        for i in ingresses:
            a = i["metadata"].get("annotations", {})
            need(a.get("nginx.ingress.kubernetes.io/limit-rpm") == "1000", f"{i['metadata']['name']}: 1,000 req/min per IP")

    for e in ERRORS:
        print(e)
    print(f"{len(docs)} objects in {ns}, {len(ERRORS)} problems")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
