"""The HTTP gateway of a listening host (`listen(..., gateway={"address", "token"})`):
urllib calls a Python worker through it and gets its result, an error carrying its
kind, 401 without the bearer token, and Prometheus text from /metrics."""

import asyncio
import json
import urllib.error
import urllib.request

from conftest import CALCULATOR, run
from titan_pm import ConfigError, ProcessManager

TOKEN = "gw-t0ken"


def http(method, url, body=None, token=TOKEN, headers=None):
    """(status, body text) of one request, bounded by a timeout (a hang fails)."""
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def gateway(pm):
    await pm.listen("127.0.0.1:0", token="join", gateway={"address": "127.0.0.1:0", "token": TOKEN})
    return "http://" + pm.gateway_address()


def test_urllib_calls_a_python_worker_through_the_gateway():
    async def main():
        async with ProcessManager() as pm:
            base = await gateway(pm)
            h = await pm.spawn(CALCULATOR)
            call = lambda path, body, **kw: asyncio.to_thread(http, "POST", base + path, body, **kw)
            status, body = await call(f"/processes/{h.process_id}/add", "[2, 3]")
            assert (status, json.loads(body)) == (200, 5), body
            status, body = await call("/processes/calculator/process_data", '[["a", "b"]]')
            assert (status, json.loads(body)) == (200, ["A", "B"]), body
            # The method raised: its kind and type.
            status, body = await call("/processes/calculator/fail", '["KeyError", "nope"]')
            error = json.loads(body)["error"]
            assert (status, error["kind"], error["remoteType"]) == (500, "Remote", "KeyError"), body
            status, body = await call("/processes/calculator/missing", "[]")
            assert (status, json.loads(body)["error"]["kind"]) == (404, "MethodNotFound"), body
            # A deadline from the header.
            status, body = await call("/processes/calculator/sleep", "[5]", headers={"Titan-Timeout-Ms": "200"})
            assert (status, json.loads(body)["error"]["kind"]) == (504, "CallTimeout"), body
            # No token, a wrong one.
            for token in (None, "wrong"):
                status, body = await call("/processes/calculator/add", "[1, 2]", token=token)
                assert (status, json.loads(body)["error"]["kind"]) == (401, "Unauthorized"), body
            status, text = await asyncio.to_thread(http, "GET", base + "/metrics")
            assert status == 200 and "# TYPE titan_process_requests counter" in text, text
            assert f'titan_process_requests_total{{process_id="{h.process_id}",name="calculator"}}' in text, text

    run(main())


def test_a_gateway_without_tls_must_be_on_loopback_and_unknown_keys_are_refused():
    async def main():
        async with ProcessManager() as pm:
            try:
                await pm.listen("127.0.0.1:0", token="join", gateway={"address": "0.0.0.0:0", "token": TOKEN})
                raise AssertionError("listened on 0.0.0.0 without tls")
            except ConfigError as e:
                assert "only on loopback" in str(e), e
            try:
                await pm.listen("127.0.0.1:0", token="join", gateway={"address": "127.0.0.1:0", "token": TOKEN, "tokn": 1})
                raise AssertionError("an unknown key was accepted")
            except ConfigError as e:
                assert "gateway.tokn: unknown option" in str(e), e
            assert pm.gateway_address() is None

    run(main())


def test_the_sync_manager_serves_a_gateway_too():
    from titan_pm import sync as tsync

    # engine="thread": the engine (and so the gateway's calls) runs between the manager's methods.
    with tsync.ProcessManager(engine="thread") as pm:
        pm.listen("127.0.0.1:0", token="join", gateway={"address": "127.0.0.1:0", "token": TOKEN})
        h = pm.spawn(CALCULATOR)
        status, body = http("POST", f"http://{pm.gateway_address()}/processes/{h.process_id}/add", "[4, 5]")
        assert (status, json.loads(body)) == (200, 9), body
