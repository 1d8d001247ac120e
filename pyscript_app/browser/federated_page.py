"""The federated page's Python (runs in a PyScript worker; DOM through pyscript.document).

Boot: find the relay (the site build writes its URL into <meta name="tabgpt-relay-url">), check it
answers, open WebGPU, read ?session=<id> from the page's URL. Create: POST /api/sessions with the
form's settings and the site's tokenizer; the page's URL becomes the link to share. Join: the round
loop of federated/client.py over a JS WebSocket (browser/federated_socket.py), training with the
GpuBackend on this browser's WebGPU; the delta and the update are computed on the GPU
(federated/gpu_model.py) and every new weight vector is hashed with Web Crypto and compared with
the relay's. The relay's status is polled for the devices panel and the round timeline. Each render
is ONE innerHTML write (federated/view.py). All logic worth testing lives in the pure modules.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import js
from pyodide.ffi import create_proxy
from pyscript import document, window

from pyscript_app.browser.dom import by_testid, site_url, start_page
from pyscript_app.browser.federated_socket import open_link, web_crypto_sha256
from pyscript_app.browser.jsutil import js_object
from pyscript_app.browser.playground_data import SiteData
from pyscript_app.browser.webgpu_executor import open_browser_device
from pyscript_app.federated.client import FederatedClient, FederatedError
from pyscript_app.federated.dashboard import Dashboard
from pyscript_app.federated.form import (InputError, join_secret_from, relay_error_text, relay_urls, session_body,
                                         session_id_from, share_url)
from pyscript_app.federated.gpu_model import GpuRoundModel
from pyscript_app.federated.local import session_train_config
from pyscript_app.federated.view import dashboard_html
from pyscript_app.gpu.executor import GpuUnavailable
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.playground.view import adapter_label

NEEDS_WEBGPU = ("Training needs WebGPU, and this browser offers no adapter: {why} Chromium can use its software "
                "adapter (SwiftShader, slow) with --enable-unsafe-webgpu; or join from the command line with "
                "`tabgpt join`.")
POLL_S = 1.5  # the relay's status (devices, timeline) is fetched this often while joined
RENDER_S = 0.2  # at most one render per this many seconds


class RelayUnreachable(OSError):
    pass


class FederatedPage:
    def __init__(self) -> None:
        meta = document.querySelector('meta[name="tabgpt-relay-url"]')
        self.relay_url = str(meta.getAttribute("content")) if meta else "http://127.0.0.1:8765"
        self.api, self.ws_url = relay_urls(self.relay_url)
        self.data = SiteData(site_url)
        self.ex = None
        self.dash = Dashboard()
        self.client: FederatedClient | None = None
        self.owner: dict[str, str] = {}  # session id -> owner token (sessions this tab created)
        self.secrets: dict[str, str] = {}  # session id -> its join secret (from a share link or our create)
        self._render_due = False
        self._proxies = []
        self._tasks: set[asyncio.Task] = set()

    # -- boot -------------------------------------------------------------------------------
    async def boot(self) -> None:
        self.set_status("Starting…", "booting")
        by_testid("relay-url").textContent = self.relay_url
        await self.data.load_index()
        self.render()
        for testid, handler in (("create-session", self.on_create), ("join-session", self.on_join),
                                ("leave-session", self.on_leave), ("end-session", self.on_end)):
            self.listen(by_testid(testid), "click", handler)
        wanted = self.session_from_url()
        if wanted:
            by_testid("session-input").value = wanted
        try:
            self.ex = await open_browser_device(allow_fallback=True)
            by_testid("backend").textContent = adapter_label(self.ex.adapter_info)
        except GpuUnavailable as e:
            by_testid("backend").textContent = "none: WebGPU is not available"
            self.set_status(NEEDS_WEBGPU.format(why=e), "no-webgpu")
            return
        try:
            await self.rest("GET", "/api/health")
        except RelayUnreachable as e:
            self.set_status(str(e), "no-relay")
            return
        by_testid("create-session").disabled = False
        by_testid("join-session").disabled = False
        self.set_status(f"Ready: press Join to train in session {wanted}." if wanted else
                        "Ready: create a session, or paste a session's id or link and Join.", "ready")

    def session_from_url(self) -> str:
        href = str(window.location.href)
        try:
            sid = session_id_from(href) if "session=" in href else ""
        except InputError:
            return ""
        secret = join_secret_from(href)
        if sid and secret:
            self.secrets[sid] = secret
        return sid

    def listen(self, element, event: str, handler) -> None:
        proxy = create_proxy(lambda ev: self.spawn(self.guarded(handler(ev))))
        self._proxies.append(proxy)
        element.addEventListener(event, proxy)

    async def guarded(self, coro) -> None:
        try:
            await coro
        except InputError as e:
            self.set_status(str(e), "error")
        except RelayUnreachable as e:
            self.set_status(str(e), "no-relay")
        except Exception as e:
            self.set_status(f"Unexpected error: {type(e).__name__}: {e}", "error")
            raise

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def set_status(self, text: str, state: str) -> None:
        status = by_testid("status")
        status.setAttribute("data-state", state)
        status.textContent = text

    def read_form(self, testid: str) -> dict:
        form = by_testid(testid)
        return json.loads(str(window.JSON.stringify(window.Object.fromEntries(window.FormData.new(form)))))

    # -- relay REST -------------------------------------------------------------------------
    async def rest(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
        """JSON from the relay; InputError with the relay's reasons on 4xx, RelayUnreachable when it is down."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        options = {"method": method, "headers": headers}
        if body is not None:
            options["body"] = json.dumps(body)
        try:
            response = await js.fetch(self.api + path, js_object(options))
            text = str(await response.text())
        except Exception as e:  # a JS TypeError: network error, CORS refusal
            raise RelayUnreachable(f"Cannot reach the relay at {self.relay_url} ({e}). Start it with "
                                   "`tabgpt relay --port 8765` (mkdocs serve starts one for you).") from None
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not response.ok:
            raise InputError(relay_error_text(int(response.status), data))
        return data

    # -- handlers ---------------------------------------------------------------------------
    async def on_create(self, _event) -> None:
        body = session_body(self.read_form("create-form"), self.data.index)
        self.set_status("Creating the session…", "creating")
        created = await self.rest("POST", "/api/sessions", body)
        sid = created["session_id"]
        self.owner[sid] = created["owner_token"]
        if created.get("join_secret"):
            self.secrets[sid] = created["join_secret"]
        by_testid("session-input").value = sid
        window.history.replaceState(None, "", share_url(str(window.location.href), sid, self.secrets.get(sid)))
        self.dash.session_id = sid
        self.render()
        self.set_status(f"Created session {sid} ({created['param_count']:,} parameters). Share this page's link; "
                        "press Join to train in it from this tab too.", "created")

    async def on_join(self, _event) -> None:
        if self.client is not None:
            return
        pasted = str(by_testid("session-input").value)
        sid = session_id_from(pasted)
        if join_secret_from(pasted):
            self.secrets[sid] = join_secret_from(pasted)
        name = str(by_testid("name-input").value).strip()[:40] or f"tab-{secrets.token_hex(2)}"
        status = await self.rest("GET", f"/api/sessions/{sid}")
        self.dash = Dashboard(name)
        self.dash.on_status(status)
        window.history.replaceState(None, "", share_url(str(window.location.href), sid, self.secrets.get(sid)))
        self.client = FederatedClient(open_link_to(self.ws_url), sid, name, self.make_model, self.on_client_event,
                                      join_secret=self.secrets.get(sid))
        by_testid("join-session").disabled = True
        by_testid("leave-session").disabled = False
        by_testid("end-session").hidden = sid not in self.owner
        self.set_status(f"Joining session {sid} as {name}…", "joining")
        poller = self.spawn(self.poll(sid))
        try:
            ended = await self.client.run()
            self.set_status({"session_closed": "The session has ended.", "stopped": "You left the session.",
                             "rounds": "Done."}.get(ended, ended), "left")
        except FederatedError as e:
            self.dash.fail(str(e))
            self.set_status(f"Stopped: {e}", "error")
        except (InputError, GpuUnavailable) as e:
            self.dash.fail(str(e))
            self.set_status(str(e), "error")
        finally:
            poller.cancel()
            self.client = None
            by_testid("join-session").disabled = False
            by_testid("leave-session").disabled = True
            self.render()

    async def on_leave(self, _event) -> None:
        if self.client is not None:
            self.client.stop()

    async def on_end(self, _event) -> None:
        sid = self.dash.session_id
        if sid in self.owner:
            await self.rest("DELETE", f"/api/sessions/{sid}", token=self.owner[sid])

    # -- the round loop's side --------------------------------------------------------------
    async def make_model(self, config: dict) -> GpuRoundModel:
        """The session's data from this site and its model on this browser's GPU."""
        name = config["dataset"]
        if name not in self.data.index:
            raise InputError(f"this site has no data set {name!r} (it has {', '.join(sorted(self.data.index))})")
        want = config.get("tokenizer_sha256") or ""
        have = self.data.index[name]["tokenizer_sha256"]
        if want and want != have:
            raise InputError(f"the session trains with another {name} tokenizer ({want[:12]}) than this site's "
                             f"({have[:12]}): it was made for another build of tabgpt")
        self.set_status(f"Loading {name} and building the {config['model']} model on the GPU…", "loading")
        data = await self.data.dataset(name)
        cfg = session_train_config(config, "gpu", "auto")
        data.check_fits(cfg.seq_len)
        if self.ex is None or self.ex.lost_reason:
            self.ex = await open_browser_device(allow_fallback=True)
        backend = GpuBackend(cfg.model_cfg(), cfg, self.ex)
        self.set_status(f"Training in session {self.dash.session_id} as {self.dash.name}.", "joined")
        return GpuRoundModel(backend, data.train, cfg, digest=web_crypto_sha256)

    def on_client_event(self, kind: str, info: dict) -> None:
        self.dash.on_event(kind, info)
        if kind in ("step", "message") and info.get("type") in (None, "live_loss", "clients_changed"):
            self.request_render()  # frequent: at most every RENDER_S
        else:
            self.render()

    async def poll(self, sid: str) -> None:
        while True:
            try:
                self.dash.on_status(await self.rest("GET", f"/api/sessions/{sid}"))
                self.render()
            except (InputError, RelayUnreachable):
                pass  # the round loop reports a dead relay or a deleted session itself
            await asyncio.sleep(POLL_S)

    def request_render(self) -> None:
        if not self._render_due:
            self._render_due = True
            self.spawn(self._render_later())

    async def _render_later(self) -> None:
        await asyncio.sleep(RENDER_S)
        self._render_due = False
        self.render()

    def render(self) -> None:
        sid = self.dash.session_id
        share = share_url(str(window.location.href), sid, self.secrets.get(sid)) if sid else ""
        by_testid("federated-live").innerHTML = dashboard_html(self.dash, share)


def open_link_to(url: str):
    async def connect():
        return await open_link(url)
    return connect


_boot = start_page(lambda: FederatedPage().boot(), "status", "The federated page")  # kept referenced
