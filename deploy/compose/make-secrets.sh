#!/usr/bin/env bash
# Creates the secret files compose.yaml expects, with random values, in
# ./secrets (next to this script). Existing files are kept, so it is safe to
# run again. The SMTP password (and the S3 credentials, for compose.s3.yaml)
# come from your providers: the script leaves placeholders you must replace.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets

rand() { openssl rand -hex 32; }

put() { # put NAME VALUE: write once, never overwrite
    local f="secrets/$1"
    if [[ -e $f ]]; then
        echo "keep   $f"
    else
        printf '%s' "$2" >"$f"
        echo "create $f"
    fi
}

# Hex passwords: safe inside URLs and config lines without escaping.
pg=$(if [[ -e secrets/postgres_password ]]; then cat secrets/postgres_password; else rand; fi)
put postgres_password "$pg"
put database_url "postgres://tradecore:${pg}@postgres:5432/tradecore"

redis_pw=$(if [[ -e secrets/redis_auth.conf ]]; then sed -n 's/^requirepass //p' secrets/redis_auth.conf; else rand; fi)
put redis_auth.conf "requirepass ${redis_pw}"$'\n'
put redis_url "redis://:${redis_pw}@redis:6379/0"

put admin_password "$(openssl rand -base64 18)"
put backup_key "$(openssl rand -base64 32)"
put grafana_admin_password "$(openssl rand -base64 18)"
put smtp_password "replace-with-the-smtp-password"

# Readable by the containers' own users (see compose.yaml); the 0700
# directory keeps other host users out.
chmod 0644 secrets/*
echo "Done. Keep a copy of secrets/backup_key somewhere else: backups cannot be restored without it."
