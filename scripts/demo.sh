#!/usr/bin/env bash
# The gateway demo: Envoy with the OIDC filter on http://127.0.0.1:10000, a local IdP
# (oidc-provider) on http://127.0.0.1:9000, an echo app behind Envoy, memory sessions.
# Log in as `alice` (group admins) or `bob` (no group); any password works.
#
# Overrides: OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET (another IdP, e.g. Keycloak:
# register redirect URI http://127.0.0.1:10000/oauth2/callback), SESSION_STORE=redis://...
# Ports: LISTEN_PORT (10000), ADMIN_PORT (9901), APP_PORT (8081), IDP_PORT (9000).
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"

LISTEN_PORT=${LISTEN_PORT:-10000}
ADMIN_PORT=${ADMIN_PORT:-9901}
APP_PORT=${APP_PORT:-8081}
IDP_PORT=${IDP_PORT:-9000}
BASE="http://127.0.0.1:$LISTEN_PORT"

ensure_envoy
ensure_node_packages
echo "building the filter (release)..." >&2
cargo build --release -q -p envoy-oidc

RUN="$TOOLS/demo-run"
mkdir -p "$RUN"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${OIDC_ISSUER:-}" ]; then
  OIDC_ISSUER="http://127.0.0.1:$IDP_PORT"
  OIDC_CLIENT_ID=${OIDC_CLIENT_ID:-demo}
  OIDC_CLIENT_SECRET=${OIDC_CLIENT_SECRET:-demo-secret-change-me}
  IDP_CLIENTS=$(printf '[{"client_id":"%s","client_secret":"%s","redirect_uri":"%s/oauth2/callback","post_logout_redirect_uri":"%s/oauth2/signed_out","backchannel_logout_uri":"%s/oauth2/backchannel_logout"}]' \
    "$OIDC_CLIENT_ID" "$OIDC_CLIENT_SECRET" "$BASE" "$BASE" "$BASE")
  IDP_PORT=$IDP_PORT IDP_CLIENTS=$IDP_CLIENTS "$NODE_BIN" e2e/idp/server.mjs > "$RUN/idp.log" 2>&1 &
  PIDS+=($!)
fi
: "${OIDC_CLIENT_ID:?set OIDC_CLIENT_ID for your IdP}"
: "${OIDC_CLIENT_SECRET:?set OIDC_CLIENT_SECRET for your IdP}"

python3 e2e/echo/server.py "$APP_PORT" &
PIDS+=($!)

export DEMO_CLIENT_SECRET="$OIDC_CLIENT_SECRET"
export DEMO_SESSION_KEY="$(demo_session_key)"
STORE='{"memory": {}}'
if [ -n "${SESSION_STORE:-}" ]; then
  export DEMO_REDIS_URL="$SESSION_STORE"
  STORE='{"redis": {"url": {"env": "DEMO_REDIS_URL"}}}'
fi
FILTER_CONFIG=$(python3 - "$OIDC_ISSUER" "$OIDC_CLIENT_ID" "$BASE" "$STORE" <<'PY'
import json, sys
issuer, client_id, base, store = sys.argv[1:]
print(json.dumps({
    "issuer": issuer,
    "client_id": client_id,
    "client_secret": {"env": "DEMO_CLIENT_SECRET"},
    "redirect_uri": f"{base}/oauth2/callback",
    "scopes": ["openid", "email", "profile", "groups", "offline_access"],
    "session": {"keys": [{"env": "DEMO_SESSION_KEY"}], "store": json.loads(store)},
    # The bundled oidc-provider takes POST logouts only over HTTPS (SameSite=None cookies);
    # on this plain-HTTP demo, id_token_hint goes by GET. Real deployments keep the POST default.
    "logout": {"post_logout_redirect_uri": f"{base}/oauth2/signed_out", "end_session_method": "get" if issuer.startswith("http://") else "post"},
    "bearer": {"enabled": True},
}))
PY
)
export LISTEN_PORT ADMIN_PORT APP_PORT FILTER_CONFIG
python3 -c 'import os,sys; sys.stdout.write(os.path.expandvars(open("configs/envoy-demo.yaml").read()))' > "$RUN/envoy.yaml"

ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$ROOT/target/release" "$ENVOY_BIN" -c "$RUN/envoy.yaml" \
  --disable-hot-restart --concurrency 2 -l warning --component-log-level dynamic_modules:info > "$RUN/envoy.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

  Demo running:  $BASE/          (log in as alice or bob, any password)
  Try:           $BASE/admin     (admins only)     $BASE/public   (no login)
                 $BASE/oauth2/sign_out
  IdP:           $OIDC_ISSUER
  Envoy admin:   http://127.0.0.1:$ADMIN_PORT/stats/prometheus
  Logs:          $RUN/

  Ctrl-C stops everything.
MSG
wait -n "${PIDS[@]}"
echo "a demo process exited; see $RUN/*.log" >&2
