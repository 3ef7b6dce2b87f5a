#!/usr/bin/env python3
"""OTLP read with the official OpenTelemetry protobuf definitions (PyPI opentelemetry-proto),
never with a parser of mcpspy's own: a test collector, and a reader of OTLP/JSON files.

  otlp_collector.py serve --out FILE [--delay S] [--fail-first N] [--status CODE] [--discard]
      An OTLP/HTTP receiver on 127.0.0.1 (a free port; its first line on stdout is
      `listening PORT`). Each POST to /v1/traces or /v1/metrics is decoded from protobuf
      (ExportTraceServiceRequest / ExportMetricsServiceRequest) and appended to FILE as one
      JSON line {"path", "request"}, then answered with an empty Export*ServiceResponse.
      --delay waits before each answer (a slow collector); --fail-first answers the first N
      posts with 503 (retry me); --status answers every post with that code; --discard
      answers without decoding or writing anything (bench/exports.py's receiver).
  otlp_collector.py decode-json FILE
      Reads an OTLP/JSON lines file (mcpspy export --format otlp-json) with the same
      definitions (json_format.Parse) and prints one such JSON line per request.

A request is printed as MessageToDict gives it (camelCase, 64-bit integers as strings, enums
as integers), except that trace and span ids are hex, as OTLP/JSON has them: protobuf's JSON
mapping writes bytes in base64, and reading OTLP/JSON's hex ids with it would silently
decode garbage, so they are converted to base64 before Parse and back to hex after.
"""
import argparse
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

ID_KEYS = ("traceId", "spanId", "parentSpanId")
SIGNALS = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


def convert_ids(node, convert):
    """Rewrites every trace/span id in a decoded OTLP dict (spans, links, exemplars)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ID_KEYS and isinstance(v, str) and v:
                node[k] = convert(v)
            else:
                convert_ids(v, convert)
    elif isinstance(node, list):
        for v in node:
            convert_ids(v, convert)


def to_dict(message):
    d = json_format.MessageToDict(message, use_integers_for_enums=True)
    convert_ids(d, lambda b64: base64.b64decode(b64).hex())
    return d


def decode_json(path):
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        raw = json.loads(line)
        if "resourceSpans" in raw:
            kind, target = "/v1/traces", ExportTraceServiceRequest()
        elif "resourceMetrics" in raw:
            kind, target = "/v1/metrics", ExportMetricsServiceRequest()
        else:
            sys.exit(f"otlp_collector.py: a line that is neither traces nor metrics: {line[:80]}")
        convert_ids(raw, lambda h: base64.b64encode(bytes.fromhex(h)).decode())
        json_format.Parse(json.dumps(raw), target, ignore_unknown_fields=True)
        print(json.dumps({"path": kind, "request": to_dict(target)}))


def serve(a):
    lock = threading.Lock()
    out = open(a.out, "a", encoding="utf-8")
    posts = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as collectors do

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                posts[0] += 1
                n = posts[0]
            if a.delay:
                time.sleep(a.delay)
            signal = SIGNALS.get(self.path)
            status = a.status or (503 if n <= a.fail_first else 200)
            if signal is None:
                status = 404
            if status != 200:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_response(415)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            request_type, response_type = signal
            if not a.discard:
                request = request_type.FromString(body)
                with lock:
                    out.write(json.dumps({"path": self.path, "request": to_dict(request)}) + "\n")
                    out.flush()
            reply = response_type().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--out", required=True)
    s.add_argument("--delay", type=float, default=0.0)
    s.add_argument("--fail-first", type=int, default=0)
    s.add_argument("--status", type=int, default=0)
    s.add_argument("--discard", action="store_true")
    d = sub.add_parser("decode-json")
    d.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "serve":
        serve(a)
    else:
        decode_json(a.file)


if __name__ == "__main__":
    main()
