"""Probe: what hostile clients cost a status API server (issue 13, item 5).

Starts its own server process on loopback (`bench/status_server.py`, open files capped at
1024 as systemd caps a service) and, one after the other:

  idle      opens --connections idle connections and holds them: how many the server
            keeps, its fds, threads and CPU meanwhile, whether a client with the token is
            still answered, and how long until the server lets the held ones go
  drip      sends a request head a byte every --drip-interval-s: time until cut off
  length    `Content-Length: -1` without the token, then streams a body for at most
            --stream-s: bytes taken before an answer, the server's RSS growth
  malformed `Content-Length: abc`: the answer, and tracebacks on the server's stderr

Every phase has a time bound (a server that never cuts a client off shows None, and what
it still held at the bound), and the run stops by itself.

    .venv/bin/python -m bench.slowloris [--connections 1100] [--tag before --api-file OLD.py]

`--api-file` probes another copy of `reach_vendor/ops/status_api.py`, e.g. the one before the
limits: `git show 26e2899:reach_vendor/ops/status_api.py > /tmp/old_status_api.py`.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.status_server import Served, status_server
from reach_devkit.harness import write_result

CHUNK = b"x" * 65536


def _open(port: int, count: int, bound_s: float) -> tuple[list[socket.socket], int]:
    """`count` connections, each sending the first line of a request and no more; those
    established within `bound_s`, and how many were not. They are opened a few at a time,
    as a patient attacker would: a burst overflows the accept queue and, with SYN cookies,
    leaves connections that exist on the client's side only."""
    socks: list[socket.socket] = []
    failed = 0
    deadline = time.monotonic() + bound_s
    while len(socks) + failed < count and time.monotonic() < deadline:
        batch = []
        for _ in range(min(4, count - len(socks) - failed)):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            batch.append(sock)
        for sock in batch:
            ready = select.poll()
            ready.register(sock.fileno(), select.POLLOUT)
            left_ms = max(0.0, deadline - time.monotonic()) * 1000
            if ready.poll(left_ms) and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                sock.send(b"GET /v1/summary HTTP/1.1\r\n")
                socks.append(sock)
            else:
                sock.close()
                failed += 1
        time.sleep(0.005)
    return socks, count - len(socks)


def _closed(socks: list[socket.socket], wait: float = 0.0) -> list[socket.socket]:
    """Those of `socks` the server has closed (or answered) by now; reads what it sent."""
    poller = select.poll()  # not select(): past fd 1023
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    done = []
    for fd, _event in poller.poll(wait * 1000):
        sock = by_fd[fd]
        try:
            while sock.recv(65536, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            continue  # an answer, but not (yet) a close
        except OSError:
            pass
        done.append(sock)
    return done


def _status_line(port: int, head: bytes, timeout: float = 3.0) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(head)
            line = sock.recv(200).split(b"\r\n", 1)[0].decode("latin-1")
            return line or "closed without an answer"
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return f"{type(exc).__name__}"


def probe_idle(served: Served, count: int, bound_s: float) -> dict[str, Any]:
    fds_before, threads_before, cpu_before = served.fds(), served.status("Threads"), served.cpu_s()
    head = f"GET /v1/summary HTTP/1.1\r\nAuthorization: Bearer {served.token}\r\n\r\n".encode()
    started = time.monotonic()
    socks, failed = _open(served.port, count, min(10.0, bound_s / 2))
    connect_s = time.monotonic() - started
    time.sleep(1.0)
    refused = set(_closed(socks))
    held = [s for s in socks if s not in refused]
    with_token_early = _status_line(served.port, head)
    # A full accept queue makes the kernel hold connections back and hand them over as
    # its SYN-ACKs are retried: the server's fds keep growing for a while, so sample them.
    fds_peak, threads_peak = served.fds(), served.status("Threads")
    while held and time.monotonic() - started < bound_s:
        for sock in _closed(held, wait=0.5):
            held.remove(sock)
        fds_peak = max(fds_peak, served.fds())
        threads_peak = max(threads_peak, served.status("Threads"))
    let_go_s = time.monotonic() - started if not held else None
    with_token_late = _status_line(served.port, head)
    fds_at_end, cpu = served.fds(), served.cpu_s() - cpu_before
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    return {
        "connections_opened": len(socks),
        "not_connected_within_bound": failed,
        "connect_s": round(connect_s, 2),
        "refused_within_1s": len(refused),
        "server_fds_before": fds_before,
        "server_fds_peak": fds_peak,
        "server_fds_at_bound_or_release": fds_at_end,
        "server_fds_after_client_close": served.fds(),
        "server_threads_before": threads_before,
        "server_threads_peak": threads_peak,
        "server_cpu_s_meanwhile": round(cpu, 2),
        "request_with_token_after_1s": with_token_early,
        "request_with_token_at_end": with_token_late,
        "all_let_go_after_s": round(let_go_s, 2) if let_go_s is not None else None,
        "still_held_at_bound": len(held),
        "bound_s": bound_s,
    }


def probe_drip(served: Served, interval_s: float, bound_s: float) -> dict[str, Any]:
    headers = "".join(f"X-Drip-{i}: {'y' * 40}\r\n" for i in range(1000))
    request = f"GET /v1/summary HTTP/1.1\r\n{headers}\r\n".encode()
    cut_off_s = None
    sent = 0
    with socket.create_connection(("127.0.0.1", served.port), timeout=2) as sock:
        sock.setblocking(False)
        started = time.monotonic()
        while time.monotonic() - started < bound_s and sent < len(request):
            try:
                sock.send(request[sent : sent + 1])
                sent += 1
                if sock.recv(1) == b"":
                    cut_off_s = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            except OSError:
                cut_off_s = time.monotonic() - started
                break
            time.sleep(interval_s)
    return {
        "drip_interval_s": interval_s,
        "bytes_sent": sent,
        "cut_off_after_s": round(cut_off_s, 2) if cut_off_s is not None else None,
        "bound_s": bound_s,
    }


def probe_negative_length(served: Served, stream_s: float, max_bytes: int) -> dict[str, Any]:
    rss_before = served.status("VmRSS")
    rss_peak = rss_before
    sent = 0
    answer = "no answer"
    head = b"POST /v1/notify HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=2) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        started = time.monotonic()
        while time.monotonic() - started < stream_s and sent < max_bytes:
            try:
                got = sock.recv(200)
                answer = got.split(b"\r\n", 1)[0].decode("latin-1") or "closed"
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                answer = type(exc).__name__
                break
            try:
                sent += sock.send(CHUNK)
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as exc:
                answer = f"{type(exc).__name__} while sending"
                break
            rss_peak = max(rss_peak, served.status("VmRSS"))
        time.sleep(0.2)
        rss_peak = max(rss_peak, served.status("VmRSS"))
    return {
        "answer": answer,
        "body_bytes_sent": sent,
        "server_rss_before_kib": rss_before,
        "server_rss_growth_kib": rss_peak - rss_before,
    }


def probe_malformed(served: Served) -> dict[str, Any]:
    before = served.stderr().count("Traceback")
    head = b"POST /v1/notify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    answer = _status_line(served.port, head)
    time.sleep(0.2)
    return {"answer": answer, "tracebacks": served.stderr().count("Traceback") - before}


def _raise_own_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--server-nofile", type=int, default=1024)
    parser.add_argument("--idle-bound-s", type=float, default=20.0)
    parser.add_argument("--drip-interval-s", type=float, default=0.2)
    parser.add_argument("--drip-bound-s", type=float, default=20.0)
    parser.add_argument("--stream-s", type=float, default=5.0)
    parser.add_argument("--stream-max-mib", type=int, default=128)
    parser.add_argument("--api-file", type=Path, default=None)
    parser.add_argument("--tag", default="", help="results go to bench/results/slowloris_TAG")
    args = parser.parse_args(argv)

    connections = min(args.connections, _raise_own_fd_limit(args.connections + 64) - 64)
    with (
        tempfile.TemporaryDirectory() as tmp,
        status_server(Path(tmp), api_file=args.api_file, nofile=args.server_nofile) as served,
    ):
        results: dict[str, Any] = {
            "api_file": str(args.api_file) if args.api_file else "reach_vendor/ops/status_api.py",
            "server_nofile": args.server_nofile,
        }
        results["idle"] = probe_idle(served, connections, args.idle_bound_s)
        results["drip"] = probe_drip(served, args.drip_interval_s, args.drip_bound_s)
        results["length_minus_one"] = probe_negative_length(
            served, args.stream_s, args.stream_max_mib << 20
        )
        results["length_abc"] = probe_malformed(served)
        results["server_tracebacks_total"] = served.stderr().count("Traceback")
    for phase, values in results.items():
        if isinstance(values, dict):
            print(f"{phase}:")
            for key, value in values.items():
                print(f"  {key:40} {value}")
        else:
            print(f"{phase:42} {values}")
    write_result("slowloris" + (f"_{args.tag}" if args.tag else ""), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
