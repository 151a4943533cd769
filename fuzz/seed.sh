#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from fixtures/: every valid and invalid case, trace, rules,
# policy and suite file goes to the targets that read it; OTLP protobuf seeds are the
# fixtures' traces as `softprobe export otlp --encoding protobuf` sends them; proxy seeds are
# hand-written requests (first byte: even = ingress, odd = egress; @C@ / @R@ = session ids).
# Idempotent: re-running only refreshes the seed files, found inputs stay.
set -euo pipefail
cd "$(dirname "$0")/.."
c=fuzz/corpus
mkdir -p "$c"/{case,otlp_json,otlp_protobuf,rules,policy,trace_context,proxy_http,suite}

cp fixtures/cases/*.case.json fixtures/invalid/*.case.json fixtures/invalid/*.trace.json "$c/case/"

# Each trace document of each case is one OTLP JSON payload.
for f in fixtures/cases/*.case.json; do
  jq -c '.traces[]' "$f" | split -l 1 - "$c/otlp_json/$(basename "$f" .case.json)-trace-"
done
cp fixtures/invalid/*.trace.json "$c/otlp_json/"

cp fixtures/rules/* fixtures/invalid/*.rules.* "$c/rules/"
for f in fixtures/cases/*.case.json; do
  if jq -e '.rules' "$f" >/dev/null; then
    jq '{version: 1, rules: .rules}' "$f" >"$c/rules/$(basename "$f" .case.json)-embedded.rules.json"
  fi
done

cp fixtures/policy/* fixtures/invalid/*.policy.json "$c/policy/"
cp fixtures/suites/*.suite.yaml fixtures/suites/invalid/*.suite.yaml "$c/suite/"

t="$c/trace_context"
printf '00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01\nsp=sess_AAAAAAAAAAAAAAAAAAAAAA,congo=t61rcWkgMzE\nuserId=alice,isProduction=false;p=1' >"$t/seed-1"
printf '01-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-00-extra\nx-softprobe-session-id=abc,tenant@vendor=v\nk=%%20v' >"$t/seed-2"
printf '00-00000000000000000000000000000000-0000000000000000-01\n,,=,sp=\n' >"$t/seed-3"

p="$c/proxy_http"
crlf() { sed 's/$/\r/'; }
crlf >"$p/ingress-get" <<'REQ'
0GET /health HTTP/1.1
host: app
x-softprobe-session-id: @C@
traceparent: 00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01
tracestate: sp=@C@,congo=t61rcWkgMzE
baggage: userId=alice

REQ
{ crlf <<'REQ'
0POST /v1/sessions HTTP/1.1
host: app
x-softprobe-session-id: @C@
content-type: application/json
content-length: 18

REQ
printf '{"mode":"replay"}\n'; } >"$p/ingress-post"
{ crlf <<'REQ'
0POST /checkout HTTP/1.1
host: app
x-softprobe-session-id: @R@
transfer-encoding: chunked

REQ
printf '5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'; } >"$p/ingress-chunked"
{ crlf <<'REQ'
1POST https://api.stripe.com/v1/payment_intents HTTP/1.1
host: api.stripe.com
tracestate: sp=@R@
authorization: Bearer sk_test_x
content-type: application/x-www-form-urlencoded
content-length: 25

REQ
printf 'amount=1000&currency=usd\n'; } >"$p/egress-stripe"
crlf >"$p/egress-get" <<'REQ'
1GET http://fragment/shipping?zip=94107 HTTP/1.1
host: fragment
x-softprobe-session-id: @R@

REQ
crlf >"$p/egress-capture" <<'REQ'
1GET /health HTTP/1.1
host: runtime
x-softprobe-session-id: @C@

REQ
crlf >"$p/egress-connect" <<'REQ'
1CONNECT api.stripe.com:443 HTTP/1.1
host: api.stripe.com:443
proxy-authorization: Basic c2Vzc2lvbjpAUkA=

REQ

# OTLP protobuf: our own exporter's bytes, caught by a throwaway local collector.
out="$c/otlp_protobuf"
port_file="$(mktemp)"
python3 - "$out" "$port_file" <<'PY' &
import http.server, os, sys
out, port_file = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    n = 0
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        H.n += 1
        with open(os.path.join(out, f"export-{H.n}.pb"), "wb") as f:
            f.write(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
collector=$!
trap 'kill "$collector" 2>/dev/null; rm -f "$port_file"' EXIT
for _ in $(seq 50); do [[ -s "$port_file" ]] && break; sleep 0.1; done
cargo run -q -p softprobe-runtime --bin softprobe -- export otlp \
  --case 'fixtures/cases/*.case.json' --encoding protobuf \
  --endpoint "http://127.0.0.1:$(cat "$port_file")" >/dev/null

for d in "$c"/*/; do echo "$(basename "$d"): $(find "$d" -type f | wc -l) seeds"; done
