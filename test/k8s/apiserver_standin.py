#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server, for tendril's tests.

No Kubernetes API server can run on the test machines; this stand-in speaks
the parts of its wire protocol that a node agent uses, over HTTPS:

  - authentication by bearer token (re-read from --token-file on every
    request, so a test can rotate it) or by a client certificate signed by
    --client-ca; anything else gets 401 with a Status object;
  - discovery (/api, /apis, /api/v1, /apis/discovery.k8s.io/v1), enough for
    kubectl to map kinds to resources;
  - list of v1 Services, v1 Nodes (cluster-scoped) and discovery.k8s.io/v1
    EndpointSlices across all namespaces or in one, with a fieldSelector on
    metadata.name/metadata.namespace, paged with limit/continue over a consistent
    snapshot, with the list's resourceVersion; an expired continue token
    gets 410 Gone;
  - watch (?watch=1) from a resourceVersion as a chunked stream of
    {"type": ..., "object": ...} lines, BOOKMARK events with
    allowWatchBookmarks, the stream ended after timeoutSeconds, and an ERROR
    event carrying a 410 Status for a resourceVersion older than the
    compacted history.

The test drives it through /standin/* (same authentication): apply objects
(as kubectl produces them), delete them, compact the history, cut every
open watch mid-stream, restart with a new resourceVersion history, and read
counters. It is a stand-in: no admission, no defaulting beyond metadata, no
label selectors (tendril's mapping applies kube-proxy's label rule itself),
no other kinds.
"""
import argparse
import base64
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KINDS = {
    # resource -> (group/version prefix, kind, list kind)
    "services": ("/api/v1", "v1", "Service", "ServiceList"),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "discovery.k8s.io/v1", "EndpointSlice", "EndpointSliceList"),
    "nodes": ("/api/v1", "v1", "Node", "NodeList"),
}
CLUSTER_SCOPED = {"nodes"}


def field_selector(q):
    """A predicate for the fieldSelector the stand-in understands:
    metadata.name=X and metadata.namespace=X, comma-separated (ANDed)."""
    terms = []
    for term in filter(None, q.get("fieldSelector", "").split(",")):
        field, sep, value = term.partition("=")
        if not sep or field not in ("metadata.name", "metadata.namespace"):
            raise ValueError("field selector %r is not supported by the stand-in" % term)
        terms.append((field.split(".")[1], value.lstrip("=")))
    return lambda o: all(o["metadata"].get(k, "") == v for k, v in terms)
KIND_TO_RESOURCE = {v[2]: k for k, v in KINDS.items()}


class Store:
    def __init__(self):
        self.cv = threading.Condition()
        self.rv = 1000
        self.compacted = 0          # watches from a version below this get 410
        self.objects = {r: {} for r in KINDS}   # resource -> (ns, name) -> obj
        self.history = []           # (rv, resource, type, obj)
        self.snapshots = {}         # rv -> resource -> sorted items (for paging)
        self.epoch = 0              # bumped by cut/restart: open watches end
        self.stats = {"lists": 0, "watches": 0, "open_watches": 0, "gone": 0, "events": 0}

    def _event(self, resource, typ, obj):
        self.history.append((self.rv, resource, typ, json.loads(json.dumps(obj))))
        if len(self.history) > 200000:
            del self.history[:100000]
            self.compacted = self.history[0][0]
        self.stats["events"] += 1
        self.cv.notify_all()

    def apply(self, obj):
        kind = obj.get("kind")
        if kind == "List":
            return [self.apply(o) for o in obj.get("items", [])]
        resource = KIND_TO_RESOURCE.get(kind)
        if not resource:
            raise ValueError("kind %r is not served by the stand-in" % kind)
        meta = obj.setdefault("metadata", {})
        if resource in CLUSTER_SCOPED:
            meta["namespace"] = ""
        else:
            meta.setdefault("namespace", "default")
        key = (meta["namespace"], meta["name"])
        with self.cv:
            old = self.objects[resource].get(key)
            if kind == "Service":
                self._allocate(obj, old)
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            meta["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
            meta["creationTimestamp"] = (old or obj)["metadata"].get("creationTimestamp") or \
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.objects[resource][key] = obj
            self._event(resource, "MODIFIED" if old else "ADDED", obj)
            return self.rv

    def _allocate(self, svc, old):
        """What the API server's registry fills in: a ClusterIP (kept from
        the old object), node ports, a health check node port."""
        spec = svc.setdefault("spec", {})
        typ = spec.setdefault("type", "ClusterIP")
        if typ == "ExternalName":
            return
        prev = (old or {}).get("spec", {})
        if not spec.get("clusterIP"):
            spec["clusterIP"] = prev.get("clusterIP") or self._next_ip()
        if spec["clusterIP"] != "None" and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        if typ in ("NodePort", "LoadBalancer"):
            for p in spec.get("ports", []):
                if not p.get("nodePort"):
                    p["nodePort"] = self._next_node_port()
            if typ == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local" and \
                    not spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = self._next_node_port()

    def _next_ip(self):
        self.ips = getattr(self, "ips", 10)
        self.ips += 1
        return "10.96.%d.%d" % (self.ips // 250, self.ips % 250 + 1)

    def _next_node_port(self):
        self.node_ports = getattr(self, "node_ports", 30999)
        self.node_ports += 1
        return self.node_ports

    def delete(self, kind, namespace, name):
        resource = KIND_TO_RESOURCE.get(kind)
        with self.cv:
            old = self.objects.get(resource, {}).pop((namespace, name), None)
            if old is None:
                return None
            self.rv += 1
            old["metadata"]["resourceVersion"] = str(self.rv)
            self._event(resource, "DELETED", old)
            return self.rv

    def save(self, path):
        with self.cv:
            state = {"rv": self.rv, "compacted": self.compacted,
                     "objects": {r: list(objs.values()) for r, objs in self.objects.items()}}
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.rename(path + ".tmp", path)

    def load(self, path):
        with open(path) as f:
            state = json.load(f)
        self.rv, self.compacted = state["rv"], state["compacted"]
        for r, objs in state["objects"].items():
            for o in objs:
                self.objects[r][(o["metadata"]["namespace"], o["metadata"]["name"])] = o
        # The event history is gone with the process: older versions are 410.
        self.compacted = self.rv

    def end_watches(self):
        with self.cv:
            self.epoch += 1
            self.cv.notify_all()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tendril-apiserver-standin"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("standin: " + fmt % args + "\n")

    # ---- plumbing -----------------------------------------------------------
    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def status(self, code, reason, message):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code})

    def authenticated(self):
        try:
            with open(self.server.token_file) as f:
                token = f.read().strip()
        except OSError:
            token = None
        auth = self.headers.get("Authorization", "")
        if token and auth == "Bearer " + token:
            return True
        try:
            if self.connection.getpeercert():
                return True
        except (ValueError, AttributeError):
            pass
        self.server.store.stats.setdefault("unauthorized", 0)
        self.server.store.stats["unauthorized"] += 1
        self.status(401, "Unauthorized", "Unauthorized")
        return False

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # ---- requests -------------------------------------------------------------
    def do_GET(self):
        if not self.authenticated():
            return
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        if path in ("/api", "/apis", "/api/v1", "/apis/discovery.k8s.io/v1", "/version"):
            return self.send_json(200, discovery(path))
        if path == "/standin/stats":
            with self.server.store.cv:
                return self.send_json(200, dict(self.server.store.stats, rv=self.server.store.rv))
        resource, ns = parse_resource_path(path)
        if not resource:
            return self.status(404, "NotFound", "the server could not find the requested resource")
        try:
            match = field_selector(q)
        except ValueError as e:
            return self.status(400, "BadRequest", str(e))
        if q.get("watch") in ("1", "true"):
            return self.watch(resource, ns, q, match)
        return self.list(resource, ns, q, match)

    def do_POST(self):
        if not self.authenticated():
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        store = self.server.store
        path = urlparse(self.path).path
        try:
            if path == "/standin/apply":
                rv = store.apply(body)
                # The wall-clock time of the change, for latency measurements.
                return self.send_json(200, {"resourceVersion": rv, "object": body, "appliedAt": time.time()})
            if path == "/standin/delete":
                scoped = KIND_TO_RESOURCE.get(body["kind"]) not in CLUSTER_SCOPED
                rv = store.delete(body["kind"], body.get("namespace", "default") if scoped else "", body["name"])
                return self.send_json(200 if rv else 404, {"resourceVersion": rv})
            if path == "/standin/compact":
                with store.cv:
                    store.compacted = store.rv + 1
                return self.send_json(200, {"compacted": store.compacted})
            if path == "/standin/cut":
                store.end_watches()
                return self.send_json(200, {})
            if path == "/standin/restart":
                # A restored API server: every version so far is unknown.
                with store.cv:
                    store.rv += 100000
                    store.compacted = store.rv
                    store.history.clear()
                    store.snapshots.clear()
                store.end_watches()
                return self.send_json(200, {"rv": store.rv})
        except (KeyError, ValueError) as e:
            return self.status(400, "BadRequest", str(e))
        return self.status(404, "NotFound", "no such stand-in operation")

    def list(self, resource, ns, q, match):
        store = self.server.store
        limit = int(q.get("limit", "0") or 0)
        with store.cv:
            store.stats["lists"] += 1
            if "continue" in q:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(q["continue"].encode()))
                    rv, start = tok["rv"], tok["start"]
                except (ValueError, KeyError):
                    return self.status(400, "BadRequest", "continue token is not valid")
                items = store.snapshots.get(rv, {}).get((resource, ns, q.get("fieldSelector", "")))
                if items is None or rv < store.compacted:
                    store.stats["gone"] += 1
                    return self.status(410, "Expired", "The provided continue parameter is too old to display a "
                                       "consistent list result. You can start a new list without the continue "
                                       "parameter.")
            else:
                rv, start = store.rv, 0
                items = [json.loads(json.dumps(o)) for (n, _), o in sorted(store.objects[resource].items())
                         if (not ns or n == ns) and match(o)]
                store.snapshots = {k: v for k, v in store.snapshots.items() if k > store.rv - 50}
                store.snapshots.setdefault(rv, {})[(resource, ns, q.get("fieldSelector", ""))] = items
        end = start + limit if limit > 0 else len(items)
        meta = {"resourceVersion": str(rv)}
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": end}).encode()).decode()
        prefix, api_version, _, list_kind = KINDS[resource]
        self.send_json(200, {"kind": list_kind, "apiVersion": api_version, "metadata": meta,
                             "items": items[start:end]})

    def watch(self, resource, ns, q, match):
        store = self.server.store
        _, api_version, kind, _ = KINDS[resource]
        try:
            since = int(q.get("resourceVersion") or 0)
        except ValueError:
            return self.status(400, "BadRequest", "resourceVersion is not valid")
        timeout = min(int(q.get("timeoutSeconds", "1800")), 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with store.cv:
            store.stats["watches"] += 1
            store.stats["open_watches"] += 1
            epoch = store.epoch
        try:
            if since and since < store.compacted:
                with store.cv:
                    store.stats["gone"] += 1
                self.chunk(json.dumps({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "too old resource version: %d (%d)" % (since, store.compacted),
                    "reason": "Expired", "code": 410}}).encode() + b"\n")
                self.chunk(b"")
                return
            sent = since or store.rv
            next_bookmark = time.monotonic() + self.server.bookmark_interval
            while True:
                with store.cv:
                    pending = []
                    for rv, r, t, o in reversed(store.history):  # newest first: only what is new is read
                        if rv <= sent:
                            break
                        if r == resource and (not ns or o["metadata"].get("namespace") == ns) and match(o):
                            pending.append((rv, t, o))
                    pending.reverse()
                    if not pending and store.epoch == epoch and time.monotonic() < min(deadline, next_bookmark):
                        store.cv.wait(timeout=max(0.0, min(deadline, next_bookmark) - time.monotonic()))
                        continue
                    cut = store.epoch != epoch
                    current = store.rv
                if cut:
                    # Dropped mid-stream: no terminating chunk.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for rv, t, o in pending:
                    self.chunk(json.dumps({"type": t, "object": o}).encode() + b"\n")
                    sent = rv
                now = time.monotonic()
                if now >= deadline:
                    self.chunk(b"")
                    return
                if now >= next_bookmark:
                    if bookmarks:
                        sent = max(sent, current)
                        self.chunk(json.dumps({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": str(sent)}}}).encode() + b"\n")
                    next_bookmark = now + self.server.bookmark_interval
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        finally:
            with store.cv:
                store.stats["open_watches"] -= 1
            self.close_connection = True


def parse_resource_path(path):
    """(resource, namespace) of a collection path, or (None, None)."""
    for resource, (prefix, _, _, _) in KINDS.items():
        if path == "%s/%s" % (prefix, resource):
            return resource, ""
        head = prefix + "/namespaces/"
        if path.startswith(head) and path.endswith("/" + resource):
            ns = path[len(head):-len(resource) - 1]
            if ns and "/" not in ns:
                return resource, ns
    return None, None


def discovery(path):
    if path == "/version":
        return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-tendril-standin"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}]}
    verbs = ["get", "list", "watch", "create", "update", "delete"]
    if path == "/api/v1":
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
             "verbs": verbs, "shortNames": ["svc"]},
            {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
             "verbs": verbs, "shortNames": ["no"]}]}
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "discovery.k8s.io/v1", "resources": [
        {"name": "endpointslices", "singularName": "endpointslice", "namespaced": True, "kind": "EndpointSlice",
         "verbs": verbs}]}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        sock, addr = super().get_request()
        # The TLS handshake happens in the handler's thread (first read).
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port listened on here once listening")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca", help="accept client certificates signed by this CA")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--state-file", help="objects and version loaded from here at start, saved at SIGTERM")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        tls.verify_mode = ssl.CERT_OPTIONAL
        tls.load_verify_locations(args.client_ca)
    srv = Server((args.address, args.port), Handler)
    srv.tls = tls
    srv.store = Store()
    if args.state_file and os.path.exists(args.state_file):
        srv.store.load(args.state_file)

    def stop(signum, frame):
        if args.state_file:
            srv.store.save(args.state_file)
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    srv.token_file = args.token_file
    srv.bookmark_interval = args.bookmark_interval
    srv.verbose = args.verbose
    port = srv.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.port_file + ".tmp", args.port_file)
    print("standin: listening on %s:%d" % (args.address, port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
