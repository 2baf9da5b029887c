#!/usr/bin/env python3
"""A scripted OpenAI-compatible /v1/chat/completions server on loopback, for benchmarks.

It answers with one tool call (--tool NAME --args JSON) until the conversation holds
--rounds tool results, then with a final text. A request with "stream": true gets the same
reply as server-sent events; anything else one JSON body. HTTP/1.1 with keep-alive, so a
client that reuses its connection pays one round trip per call.

Binds 127.0.0.1 on --port (0: a free port) and prints `PORT <n>` on stdout once listening.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--tool", default="fs_write")
ap.add_argument("--args", default='{"path":"hello.txt","content":"hi\\n"}')
ap.add_argument("--rounds", type=int, default=1, help="tool-call rounds before the final answer")
A = ap.parse_args()
COUNT = {"n": 0}
LOCK = threading.Lock()


def reply(body):
    with LOCK:
        COUNT["n"] += 1
        n = COUNT["n"]
    messages = body.get("messages") or []
    tool_results = sum(1 for m in messages if m.get("role") == "tool")
    if tool_results >= A.rounds:
        message = {"role": "assistant", "content": "done"}
        finish = "stop"
    else:
        call = {"id": f"call_{n:08d}", "type": "function",
                "function": {"name": A.tool, "arguments": A.args}}
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
        finish = "tool_calls"
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


def sse(resp):
    message, choice = resp["choices"][0]["message"], resp["choices"][0]
    base = {"id": resp["id"], "object": "chat.completion.chunk", "model": resp["model"]}
    deltas = [{"role": "assistant", "content": message.get("content") or ""}]
    for i, call in enumerate(message.get("tool_calls") or []):
        deltas.append({"tool_calls": [dict(call, index=i)]})
    events = [dict(base, choices=[{"index": 0, "delta": d, "finish_reason": None}]) for d in deltas]
    events.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]))
    events.append(dict(base, choices=[], usage=resp["usage"]))
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body leave in two writes: with Nagle on, the second waits for the
    # client's delayed ACK of the first (~40 ms per call on a kept-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        resp = reply(body)
        if body.get("stream"):
            out, kind = sse(resp), "text/event-stream"
        else:
            out, kind = json.dumps(resp).encode(), "application/json"
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Server(ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    server = Server(("127.0.0.1", A.port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
