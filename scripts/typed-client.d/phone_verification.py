"""The phone verification through a client generated from weft's OpenAPI document.

Starts a stand-in SMS provider (Twilio's REST shape) and `weft serve` with the phone
verification component, generates a client from `/openapi.json` with openapi-python-client,
then, through that client only: starts the orchestration, raises the code the provider received
as `SmsChallengeResponse`, and reads the status until it is `Completed` with output `true`.
"""

import argparse
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TOKEN = "typed-client-token"
PHONE = "+14255550123"


class SmsProvider(http.server.ThreadingHTTPServer):
    """Records each message posted to `/2010-04-01/Accounts/{sid}/Messages.json`."""

    def __init__(self):
        self.messages = []
        super().__init__(("127.0.0.1", 0), _SmsHandler)

    def code(self, within=60):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.messages:
                (code,) = re.findall(r"\b\d{4}\b", self.messages[0]["Body"])
                return code
            time.sleep(0.05)
        raise AssertionError("the SMS provider received no message")


class _SmsHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        self.server.messages.append({k: v[0] for k, v in form.items()})
        body = json.dumps({"sid": "SM0001", "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(weft, component, work, provider):
    components = os.path.join(work, "components")
    os.mkdir(components)
    with open(component, "rb") as src, open(os.path.join(components, "phone_verification.wasm"), "wb") as dst:
        dst.write(src.read())
    env = dict(
        os.environ,
        WEFT_TOKEN=TOKEN,
        TwilioBaseUrl=f"http://127.0.0.1:{provider.server_address[1]}",
        TwilioAccountSid="ACtest",
        TwilioAuthToken="token123",
        TwilioPhoneNumber="+15550000000",
    )
    log = open(os.path.join(work, "serve.log"), "w+")
    process = subprocess.Popen(
        [weft, "serve", "--db", os.path.join(work, "weft.db"), "--listen", "127.0.0.1:0",
         "--components", components, "--cache-dir", "target/weft-test-cache"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log.seek(0)
        for line in log:
            if line.startswith("weft listening on "):
                return process, line.removeprefix("weft listening on ").strip()
        if process.poll() is not None:
            break
        time.sleep(0.1)
    log.seek(0)
    process.kill()
    raise SystemExit(f"weft did not start:\n{log.read()}")


def generate(generator, url, work):
    """Generates package `weft_client` from the served document into `work`, importable."""
    subprocess.run(
        [generator, "generate", "--url", f"{url}/openapi.json", "--meta", "none",
         "--output-path", os.path.join(work, "weft_client"), "--overwrite"],
        check=True, stdout=subprocess.DEVNULL,
    )
    sys.path.insert(0, work)


def verify_a_phone(url, provider):
    import httpx
    from weft_client import AuthenticatedClient
    from weft_client.api.instances import raise_event, start, status
    from weft_client.models import InstanceStatus, StartResponse

    # A wait for the end (below) holds its request up to 30 s.
    client = AuthenticatedClient(base_url=url, token=TOKEN, timeout=httpx.Timeout(60.0))
    started = start.sync(name="phone-verification", client=client, body=PHONE, instance_id="typed-1")
    assert isinstance(started, StartResponse), started
    assert started.id == "typed-1", started
    answer = raise_event.sync_detailed(id=started.id, event="SmsChallengeResponse", client=client,
                                       body=provider.code())
    assert answer.status_code == 202, answer
    final = status.sync(id=started.id, client=client, wait_for_completion="30s")
    assert isinstance(final, InstanceStatus), final
    assert final.runtime_status.value == "Completed", final
    assert final.output is True, final
    print(f"typed client: {final.instance_id} {final.runtime_status.value}, output {final.output}")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--weft", required=True)
    args.add_argument("--component", required=True)
    args.add_argument("--generator", required=True)
    args = args.parse_args()
    provider = SmsProvider()
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as work:
        process, url = serve(args.weft, args.component, work, provider)
        try:
            generate(args.generator, url, work)
            verify_a_phone(url, provider)
        except BaseException:
            with open(os.path.join(work, "serve.log")) as log:
                sys.stderr.write(log.read())
            raise
        finally:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
