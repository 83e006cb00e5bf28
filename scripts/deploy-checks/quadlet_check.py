#!/usr/bin/env python3
"""Offline check of the Quadlet units in deploy/quadlet.

The real check is `/usr/libexec/podman/quadlet -dryrun` (Podman >= 4.4). Where
that binary is missing (Debian 12 ships Podman 4.3.1, without Quadlet), this
script checks what it can without it:

  * each file parses as a systemd unit file (sections, key=value, continuation
    lines), with only the sections Quadlet accepts for its type;
  * every key of [Container], [Volume] and [Network] is one Quadlet knows
    (an unknown key makes Quadlet refuse the whole file);
  * required keys and value shapes: Image= fully qualified when
    AutoUpdate=registry, PublishPort= bound to 127.0.0.1 (only the host
    network nginx faces the outside), Secret= options, health-check timings;
  * references resolve: Network=x.network and Volume=x.volume:... name files
    that exist, Requires=/After=/Wants= name units that exist here;
  * every Secret= is created by the Ansible role (its secrets maps);
  * it writes, per .container, the systemd service Quadlet would generate
    ([Unit], [Service], [Install] passed through, ExecStart= a podman stub)
    into --emit DIR, so that `systemd-analyze verify` checks the systemd side
    with the real parser.

Usage: quadlet_check.py QUADLET_DIR ANSIBLE_ROLE_DEFAULTS [--emit DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

# Keys of the Quadlet groups (podman 5.x, pkg/systemd/quadlet). A key missing
# from an older Podman is a problem Quadlet reports at daemon-reload; the units
# here stay within what Podman 4.9 (Ubuntu 24.04) supports and pass anything
# newer through PodmanArgs=.
CONTAINER_KEYS = {
    "AddCapability", "AddDevice", "AddHost", "Annotation", "AutoUpdate", "CgroupsMode",
    "ContainerName", "ContainersConfModule", "DNS", "DNSOption", "DNSSearch", "DropCapability",
    "Environment", "EnvironmentFile", "EnvironmentHost", "Entrypoint", "Exec", "ExposeHostPort",
    "GIDMap", "GlobalArgs", "Group", "GroupAdd", "HealthCmd", "HealthInterval", "HealthOnFailure",
    "HealthLogDestination", "HealthMaxLogCount", "HealthMaxLogSize", "HealthRetries",
    "HealthStartPeriod", "HealthStartupCmd", "HealthStartupInterval", "HealthStartupRetries",
    "HealthStartupSuccess", "HealthStartupTimeout", "HealthTimeout", "HostName", "IP6", "IP",
    "Image", "Label", "LogDriver", "LogOpt", "Mask", "Memory", "Mount", "Network", "NetworkAlias",
    "NoNewPrivileges", "Notify", "PidsLimit", "Pod", "PodmanArgs", "PublishPort", "Pull",
    "ReadOnly", "ReadOnlyTmpfs", "ReloadCmd", "ReloadSignal", "RemapGid", "RemapUid",
    "RemapUidSize", "RemapUsers", "Retry", "RetryDelay", "Rootfs", "RunInit", "SeccompProfile",
    "Secret", "SecurityLabelDisable", "SecurityLabelFileType", "SecurityLabelLevel",
    "SecurityLabelNested", "SecurityLabelType", "ServiceName", "ShmSize", "StopSignal",
    "StartWithPod", "StopTimeout", "SubGIDMap", "SubUIDMap", "Sysctl", "Timezone", "Tmpfs",
    "UIDMap", "Ulimit", "Unmask", "User", "UserNS", "VolatileTmp", "Volume", "WorkingDir",
}
VOLUME_KEYS = {
    "ContainersConfModule", "Copy", "Device", "Driver", "GlobalArgs", "Group", "Image", "Label",
    "Options", "PodmanArgs", "ServiceName", "Type", "User", "VolumeName",
}
NETWORK_KEYS = {
    "Label", "DNS", "ContainersConfModule", "GlobalArgs", "DisableDNS", "Driver", "Gateway",
    "IPAMDriver", "IPRange", "IPv6", "InterfaceName", "Internal", "NetworkName",
    "NetworkDeleteOnStop", "Options", "ServiceName", "Subnet", "PodmanArgs",
}
QUADLET_GROUP = {".container": "Container", ".volume": "Volume", ".network": "Network"}
QUADLET_KEYS = {"Container": CONTAINER_KEYS, "Volume": VOLUME_KEYS, "Network": NETWORK_KEYS}
PASS_THROUGH = {"Unit", "Service", "Install", "Quadlet"}
DURATION = re.compile(r"^\d+(ms|s|m|h)$")
ERRORS: list[str] = []


def error(path: Path, line: int, msg: str) -> None:
    ERRORS.append(f"{path.name}:{line}: {msg}")


def parse_unit(path: Path) -> dict[str, list[tuple[int, str, str]]]:
    """systemd unit syntax: [Section], Key=Value, '\\' continues a line, # and ; comments."""
    sections: dict[str, list[tuple[int, str, str]]] = {}
    current = None
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        raw = lines[i]
        i += 1
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        while stripped.endswith("\\") and i < len(lines):
            stripped = stripped[:-1] + " " + lines[i].strip()
            i += 1
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                error(path, lineno, f"malformed section header {stripped!r}")
                continue
            current = stripped[1:-1]
            if current in sections:
                error(path, lineno, f"section [{current}] appears twice")
            sections.setdefault(current, [])
            continue
        if current is None:
            error(path, lineno, "key outside any section")
            continue
        if "=" not in stripped:
            error(path, lineno, f"not a Key=Value line: {stripped!r}")
            continue
        key, value = stripped.split("=", 1)
        key, value = key.strip(), value.strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key):
            error(path, lineno, f"invalid key name {key!r}")
        sections[current].append((lineno, key, value))
    return sections


def service_name(unit_file: str) -> str:
    stem, ext = unit_file.rsplit(".", 1)
    return {"container": f"{stem}.service", "volume": f"{stem}-volume.service",
            "network": f"{stem}-network.service"}[ext]


def secret_names(role_defaults: Path) -> set[str]:
    data = yaml.safe_load(role_defaults.read_text(encoding="utf-8"))
    names: set[str] = set()
    for key, value in data.items():
        if key.startswith("tradecore_podman_secrets") and isinstance(value, dict):
            names.update(value)
    return names


def check_container(path: Path, keys: list[tuple[int, str, str]], files: set[str], secrets: set[str]) -> None:
    values: dict[str, list[tuple[int, str]]] = {}
    for line, key, value in keys:
        values.setdefault(key, []).append((line, value))
    if "Image" not in values:
        error(path, 1, "[Container] needs Image=")
    for line, image in values.get("Image", []):
        first = image.split("/", 1)[0]
        qualified = "/" in image and ("." in first or ":" in first or first == "localhost")
        if values.get("AutoUpdate", [(0, "")])[0][1] == "registry" and not qualified:
            error(path, line, f"AutoUpdate=registry needs a fully qualified image, not {image!r}")
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            error(path, line, f"image {image!r} has no tag: pin one")
    for line, value in values.get("AutoUpdate", []):
        if value not in ("registry", "local"):
            error(path, line, f"AutoUpdate={value}: expected registry or local")
    if "ContainerName" not in values:
        error(path, 1, "set ContainerName= (other units and configs refer to containers by name)")
    for line, value in values.get("Network", []):
        if value.endswith(".network") and value not in files:
            error(path, line, f"Network={value}: no such file here")
        elif not value.endswith(".network") and value not in ("host", "none", "pasta", "slirp4netns"):
            error(path, line, f"Network={value}: use a .network unit of this directory")
    for line, value in values.get("Volume", []):
        source = value.split(":", 1)[0]
        if source.endswith(".volume") and source not in files:
            error(path, line, f"Volume={value}: no such .volume file here")
        if ":" not in value:
            error(path, line, f"Volume={value}: needs SOURCE:TARGET")
        elif not (source.startswith(("/", "%h/")) or source.endswith(".volume")):
            error(path, line, f"Volume={value}: source must be an absolute path, %h/... or a .volume unit")
    for line, value in values.get("PublishPort", []):
        parts = value.split(":")
        if len(parts) != 3 or parts[0] != "127.0.0.1":
            error(path, line, f"PublishPort={value}: publish on 127.0.0.1 only (only nginx faces the outside)")
    for line, value in values.get("Secret", []):
        name, *opts = value.split(",")
        if name not in secrets:
            error(path, line, f"Secret={name}: not created by the Ansible role (tradecore_podman_secrets_*)")
        options = dict(o.split("=", 1) for o in opts if "=" in o)
        if options.get("type", "mount") != "mount":
            error(path, line, f"Secret={value}: use type=mount (files for the *_FILE variables)")
        if "mode" in options and not re.fullmatch(r"0[0-7]{3}", options["mode"]):
            error(path, line, f"Secret={value}: mode must be octal like 0400")
    for key in ("HealthInterval", "HealthTimeout", "HealthStartPeriod"):
        for line, value in values.get(key, []):
            if not DURATION.match(value):
                error(path, line, f"{key}={value}: expected a duration like 10s")
    for line, value in values.get("HealthRetries", []):
        if not value.isdigit():
            error(path, line, f"HealthRetries={value}: expected a number")
    for line, value in values.get("HealthOnFailure", []):
        if value not in ("none", "kill", "restart", "stop"):
            error(path, line, f"HealthOnFailure={value}: expected none, kill, restart or stop")
    for line, value in values.get("HealthCmd", []):
        if value.startswith("[") and not value.endswith("]"):
            error(path, line, "HealthCmd= JSON array is not closed")
    for line, value in values.get("Environment", []):
        if "=" not in value:
            error(path, line, f"Environment={value}: expected NAME=value")
        elif re.match(r"TRADECORE_[A-Z_]+__[A-Z_]+=", value) is None and value.startswith("TRADECORE_"):
            error(path, line, f"Environment={value}: TRADECORE_SECTION__KEY needs two underscores")
        if re.match(r"TRADECORE_(DATABASE__URL|REDIS__URL|AUTH__ADMIN_PASSWORD|BACKUP__KEY)=", value):
            error(path, line, f"Environment={value.split('=')[0]}: a secret; use the _FILE variant with Secret=")
    for line, value in values.get("NoNewPrivileges", []) + values.get("ReadOnly", []):
        if value not in ("true", "false", "yes", "no"):
            error(path, line, f"expected a boolean, got {value!r}")


def check_unit_refs(path: Path, sections: dict, units: set[str]) -> None:
    for line, key, value in sections.get("Unit", []):
        if key in ("Requires", "After", "Wants", "BindsTo", "Before", "PartOf"):
            for ref in value.split():
                if ref.endswith(".service") and ref not in units:
                    error(path, line, f"{key}={ref}: no unit here generates it")
    install = {k: v for _, k, v in sections.get("Install", [])}
    if QUADLET_GROUP.get(path.suffix) == "Container" and install.get("WantedBy") != "default.target":
        error(path, 1, "[Install] WantedBy=default.target (user units start at boot through lingering)")


def emit_service(path: Path, sections: dict, out: Path) -> None:
    """What Quadlet generates, minus the podman command line: enough for systemd-analyze."""
    lines = ["# Translated from " + path.name + " by scripts/deploy-checks/quadlet_check.py", "[Unit]",
             f"SourcePath={path.resolve()}"]
    for _, key, value in sections.get("Unit", []):
        lines.append(f"{key}={value}")
    lines += ["", "[Service]", "Environment=PODMAN_SYSTEMD_UNIT=%n", "KillMode=mixed",
              "Type=notify", "NotifyAccess=all", "SyslogIdentifier=%N",
              "ExecStart=/usr/bin/podman run --name=" + path.stem + " --replace --rm --sdnotify=conmon -d IMAGE",
              "ExecStop=/usr/bin/podman rm -v -f -i " + path.stem]
    for _, key, value in sections.get("Service", []):
        lines.append(f"{key}={value}")
    if sections.get("Install"):
        lines += ["", "[Install]"] + [f"{k}={v}" for _, k, v in sections["Install"]]
    (out / service_name(path.name)).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("quadlet_dir", type=Path)
    ap.add_argument("role_defaults", type=Path)
    ap.add_argument("--emit", type=Path)
    args = ap.parse_args()

    paths = sorted(p for p in args.quadlet_dir.iterdir() if p.suffix in QUADLET_GROUP)
    if not paths:
        print(f"no Quadlet files in {args.quadlet_dir}", file=sys.stderr)
        return 1
    if args.emit:
        args.emit.mkdir(parents=True, exist_ok=True)
    files = {p.name for p in paths}
    units = {service_name(p.name) for p in paths}
    secrets = secret_names(args.role_defaults)
    for stray in args.quadlet_dir.iterdir():
        if stray.is_file() and stray.suffix not in QUADLET_GROUP and stray.name != "README.md":
            error(stray, 1, "not a Quadlet unit (.container, .volume, .network)")

    for path in paths:
        sections = parse_unit(path)
        group = QUADLET_GROUP[path.suffix]
        if group not in sections:
            error(path, 1, f"missing [{group}] section")
        for name in sections:
            if name != group and name not in PASS_THROUGH and not name.startswith("X-"):
                error(path, 1, f"section [{name}] is not valid in a {path.suffix} file")
        for line, key, _ in sections.get(group, []):
            if key not in QUADLET_KEYS[group]:
                error(path, line, f"unknown key {key}= in [{group}] (Quadlet rejects the file)")
        if group == "Container":
            check_container(path, sections.get(group, []), files, secrets)
            if args.emit:
                emit_service(path, sections, args.emit)
        check_unit_refs(path, sections, units)

    if args.emit:
        # Volume and network services exist in the generated set too.
        for path in paths:
            if path.suffix != ".container":
                (args.emit / service_name(path.name)).write_text(
                    f"[Unit]\nDescription=Quadlet {path.name}\n\n[Service]\nType=oneshot\n"
                    "RemainAfterExit=yes\nExecStart=/usr/bin/podman version\n", encoding="utf-8")

    for e in ERRORS:
        print(e)
    print(f"{len(paths)} Quadlet files, {len(ERRORS)} problems")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
