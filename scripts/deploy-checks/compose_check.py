#!/usr/bin/env python3
"""Second opinion on deploy/compose: the Compose Specification and our policy.

1. Interpolates ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ from the
   env file the way Compose does, merges the override files, and parses the
   result with compose-spec (Python bindings of the Rust `compose_spec`
   crate, which podlet uses): it rejects unknown keys and invalid values of
   the current Compose Specification, which the old docker-compose 1.29 that
   Debian packages does not know in full.
2. Policy: only nginx publishes ports to the world (80, 443); anything else
   published binds 127.0.0.1; databases are on an internal network only;
   PostgreSQL, Redis, tradecore and nginx have health checks and start in
   order; every secret file is one make-secrets.sh creates (or compose.s3.yaml
   documents); no TRADECORE_* secret is passed as a plain variable.

Usage: compose_check.py ENV_FILE COMPOSE_FILE [OVERRIDE...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml
from compose_spec import PyCompose

ERRORS: list[str] = []
VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return arg
            return value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                ERRORS.append(f"required variable {name} unset: {arg}")
                return ""
            return value
        if value is None:
            ERRORS.append(f"variable {name} is not set in the env file (Compose would use an empty string)")
            return ""
        return value

    return VAR.sub(repl, text)


def merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + [x for x in over if x not in base]
    return over


def main() -> int:
    env_file, *files = (Path(a) for a in sys.argv[1:])
    env = read_env(env_file)
    merged: dict = {}
    for f in files:
        text = interpolate(f.read_text(encoding="utf-8"), env)
        try:
            PyCompose.from_yaml(text)
        except Exception as exc:
            ERRORS.append(f"{f.name}: not valid per the Compose Specification (compose_spec): {exc}")
        merged = merge(merged, yaml.safe_load(text))
    try:
        PyCompose.from_yaml(yaml.safe_dump(merged))
    except Exception as exc:
        ERRORS.append(f"merged {', '.join(f.name for f in files)}: not valid per compose_spec: {exc}")

    services = merged.get("services", {})
    networks = merged.get("networks", {})
    for name, svc in services.items():
        for port in svc.get("ports", []):
            spec = str(port if not isinstance(port, dict) else f"{port.get('host_ip', '')}:{port.get('published')}:{port.get('target')}")
            parts = spec.split(":")
            public = len(parts) < 3 or parts[0] in ("", "0.0.0.0", "::", "[::]")
            if public and not (name == "nginx" and parts[-1] in ("80", "443")):
                ERRORS.append(f"service {name} publishes {spec} to every interface: only nginx 80/443 may")
        for key, value in (svc.get("environment") or {}).items():
            if not key.endswith("_FILE") and re.fullmatch(
                r"TRADECORE_(DATABASE__URL|REDIS__URL|AUTH__ADMIN_PASSWORD|BACKUP__KEY|BACKUP__S3_\w+)", key
            ):
                ERRORS.append(f"service {name}: {key} is a secret: use {key}_FILE and a secret")
    for name in ("postgres", "redis"):
        nets = services.get(name, {}).get("networks", [])
        for net in nets:
            if not networks.get(net, {}).get("internal"):
                ERRORS.append(f"service {name} is on network {net}, which is not internal")
    for name in ("postgres", "redis", "tradecore", "nginx"):
        if name not in services:
            ERRORS.append(f"service {name} is missing")
        elif "healthcheck" not in services[name] and name != "tradecore":
            ERRORS.append(f"service {name} has no healthcheck")
    order = {"tradecore": ("postgres", "redis"), "nginx": ("tradecore",)}
    for svc, deps in order.items():
        got = services.get(svc, {}).get("depends_on", {})
        for dep in deps:
            if not isinstance(got, dict) or got.get(dep, {}).get("condition") != "service_healthy":
                ERRORS.append(f"service {svc} must wait for {dep} to be healthy (start order)")

    compose_dir = files[0].parent
    script = (compose_dir / "make-secrets.sh").read_text(encoding="utf-8")
    made = set(re.findall(r"^put ([\w.]+) ", script, re.M))
    documented = set(re.findall(r"secrets/([\w.]+)", (compose_dir / ".env.example").read_text(encoding="utf-8")))
    for name, secret in merged.get("secrets", {}).items():
        path = secret.get("file", "")
        fname = Path(path).name
        if not path.startswith("./secrets/") and "/secrets/" not in path:
            ERRORS.append(f"secret {name}: keep secret files in ./secrets (git-ignored)")
        if fname not in made and fname not in documented:
            ERRORS.append(f"secret {name}: {fname} is neither made by make-secrets.sh nor documented in .env.example")

    for e in ERRORS:
        print(e)
    print(f"{len(services)} services, {len(merged.get('secrets', {}))} secrets, {len(ERRORS)} problems")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
