-- wrk script for benchmarks/ingest.py: each request one distinct Alertmanager alert; the
-- fingerprint of every alert answered 202 is written to <dir>/<run>-<thread>.txt, so that the
-- benchmark can count only those it finds stored.
-- usage: wrk -s ingest_wrk.lua URL -- <dir> <run> <token> <hosts> <one_host: 0|1>
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  dir, run, token, hosts, one_host = args[1], args[2], args[3], tonumber(args[4]), args[5] == "1"
  out = io.open(string.format("%s/%s-%d.txt", dir, run, id), "w")
  n = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local host = one_host and "compute-0000" or string.format("compute-%04d", n % hosts)
  local body = string.format(
    '{"version": "4", "status": "firing", "receiver": "bridge", "alerts": [{"status": "firing", ' ..
    '"fingerprint": "%s-%d-%d", "startsAt": "2026-11-24T19:17:07Z", "labels": {"alertname": "HostDown", ' ..
    '"severity": "critical", "openstack_host": "%s", "instance": "%s:9100", "job": "node"}, ' ..
    '"annotations": {"summary": "%s unreachable"}}]}', run, id, n, host, host, host)
  return wrk.format(nil, "/v1/alerts/alertmanager", nil, body)
end

function response(status, headers, body)
  if status == 202 then
    local fingerprint = string.match(body, '"fingerprint": ?"([^"]+)"')
    out:write((fingerprint or "?"), "\n")
  end
end
