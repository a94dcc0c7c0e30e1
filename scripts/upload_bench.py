"""Upload and download throughput of one session against a running Confide: N uploads of a
SIZE-byte text file (sequential), then N downloads, timed end to end on loopback."""
import http.client, json, sys, time, uuid

host, port = sys.argv[1], int(sys.argv[2])
n, size = int(sys.argv[3]), int(sys.argv[4])
sid = str(uuid.uuid4())

def call(method, path, body=b"", headers=None, cookie=None):
    c = http.client.HTTPConnection(host, port, timeout=120)
    h = {"x-confide-session": sid, "cookie": cookie or f"__Host-confide_sid={sid}"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    return r, data

r, _ = call("POST", "/api/session/start", b"{}", {"content-type": "application/json"})
proof = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and "proof" in v][0]
cookie = f"__Host-confide_sid={sid}; {proof}"
line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
content = (line * (size // len(line) + 1))[:size]
boundary = "benchboundary"
body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
        f"Content-Type: text/plain\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
ids, up = [], []
for _ in range(n):
    t = time.perf_counter()
    r, data = call("POST", "/api/files", body, {"content-type": f"multipart/form-data; boundary={boundary}"}, cookie)
    up.append(time.perf_counter() - t)
    assert r.status == 200, (r.status, data[:200])
    ids.append(json.loads(data)["id"])
down = []
for i in ids:
    t = time.perf_counter()
    r, data = call("GET", f"/api/files/{i}", cookie=cookie)
    down.append(time.perf_counter() - t)
    assert r.status == 200 and data == content
mb = size / 1e6
up.sort(); down.sort()
print(f"{n} uploads of {size} B: median {up[n//2]*1000:.0f} ms ({mb/up[n//2]:.0f} MB/s), max {up[-1]*1000:.0f} ms")
print(f"{n} downloads: median {down[n//2]*1000:.0f} ms ({mb/down[n//2]:.0f} MB/s), max {down[-1]*1000:.0f} ms")
