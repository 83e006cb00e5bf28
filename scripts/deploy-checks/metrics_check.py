#!/usr/bin/env python3
"""Checks the Grafana dashboard and the metric names of the alert rules.

No Grafana runs here (it is not packaged for Debian), so the dashboard is
checked for shape: valid JSON, a schemaVersion, unique panel ids, panels on
the 24-column grid without overlaps, a datasource and at least one query on
every non-row panel, the datasource and instance template variables defined.

Every PromQL expression, in the rules and in the dashboard (after replacing
Grafana's $variables), is parsed with promql-parser (a PromQL parser, the Rust
crate of the same name), and every metric it selects must be in
deploy/monitoring/metrics.txt (histograms with _bucket/_sum/_count).

Usage: metrics_check.py METRICS_TXT RULES_YML [RULES_YML...] --dashboard JSON
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import promql_parser
import yaml

ERRORS: list[str] = []


def load_catalogue(path: Path) -> set[str]:
    names: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, kind, *_ = line.split()
        names.add(name)
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def selectors(node) -> list[str]:
    """Metric names selected anywhere in a parsed expression."""
    out: list[str] = []
    kind = type(node).__name__
    if kind == "VectorSelector":
        name = node.name
        if not name:
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    name = m.value
        out.append(name or "")
        return out
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and type(child).__module__.startswith("promql_parser"):
            out += selectors(child)
    for child in getattr(node, "args", None) or []:
        out += selectors(child)
    return out


def check_expr(where: str, expr: str, known: set[str]) -> None:
    try:
        tree = promql_parser.parse(expr)
    except Exception as exc:  # the parser raises ValueError with the reason
        ERRORS.append(f"{where}: PromQL does not parse: {exc}: {expr}")
        return
    for name in selectors(tree):
        if not name:
            ERRORS.append(f"{where}: selector without a metric name: {expr}")
        elif name not in known:
            ERRORS.append(f"{where}: unknown metric {name} (not in metrics.txt)")


def grafana_to_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def check_dashboard(path: Path, known: set[str]) -> int:
    try:
        dash = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        ERRORS.append(f"{path.name}: not JSON: {exc}")
        return 0
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dash:
            ERRORS.append(f"{path.name}: missing top-level {key!r}")
    if not isinstance(dash.get("schemaVersion"), int) or dash.get("schemaVersion", 0) < 36:
        ERRORS.append(f"{path.name}: schemaVersion should be a recent integer (36+)")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        ERRORS.append(f"{path.name}: needs a `datasource` template variable of type datasource")
    if "instance" not in variables:
        ERRORS.append(f"{path.name}: needs an `instance` template variable")
    for name, var in variables.items():
        if var.get("type") == "query":
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
            if not m:
                ERRORS.append(f"{path.name}: variable {name}: expected label_values(selector, label)")
            else:
                check_expr(f"{path.name}: variable {name}", m.group(1), known)

    ids: set[int] = set()
    cells: dict[tuple[int, int], int] = {}
    queries = 0
    for panel in dash.get("panels", []):
        pid = panel.get("id")
        where = f"{path.name}: panel {pid} {panel.get('title', '')!r}"
        if pid in ids:
            ERRORS.append(f"{where}: duplicate id")
        ids.add(pid)
        if not panel.get("title"):
            ERRORS.append(f"{where}: no title")
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k) for k in ("x", "y", "w", "h"))
        if None in (x, y, w, h) or x < 0 or w < 1 or x + w > 24 or h < 1:
            ERRORS.append(f"{where}: gridPos {grid} is off the 24-column grid")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        ERRORS.append(f"{where}: overlaps panel {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = pid
                else:
                    continue
                break
        if panel.get("type") == "row":
            continue
        ds = panel.get("datasource") or {}
        if ds.get("uid") != "${datasource}" or ds.get("type") != "prometheus":
            ERRORS.append(f"{where}: datasource should be the prometheus ${{datasource}} variable")
        targets = panel.get("targets") or []
        if not targets:
            ERRORS.append(f"{where}: no queries")
        for t in targets:
            expr = t.get("expr", "")
            if not expr:
                ERRORS.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            queries += 1
            if 'job="tradecore"' in expr and "$instance" not in expr:
                ERRORS.append(f"{where}: tradecore query ignores the $instance variable: {expr}")
            check_expr(where, grafana_to_promql(expr), known)
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            ERRORS.append(f"{where}: no unit")
    return queries


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics", type=Path)
    ap.add_argument("rules", type=Path, nargs="+")
    ap.add_argument("--dashboard", type=Path, required=True)
    args = ap.parse_args()
    known = load_catalogue(args.metrics)

    n_rules = 0
    for rules in args.rules:
        data = yaml.safe_load(rules.read_text(encoding="utf-8"))
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                n_rules += 1
                name = rule.get("alert") or rule.get("record")
                check_expr(f"{rules.name}: {name}", rule["expr"], known)
                if "alert" in rule:
                    if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                        ERRORS.append(f"{rules.name}: {name}: severity label must be warning or critical")
                    ann = rule.get("annotations", {})
                    if not ann.get("summary") or not ann.get("description"):
                        ERRORS.append(f"{rules.name}: {name}: needs summary and description annotations")
    queries = check_dashboard(args.dashboard, known)

    for e in ERRORS:
        print(e)
    print(f"{n_rules} rules, {queries} dashboard queries, {len(known)} known series names, {len(ERRORS)} problems")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
