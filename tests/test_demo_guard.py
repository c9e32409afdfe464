"""The demo against a hostile web page: DNS rebinding (a foreign Host or Origin) gets 403 from the launched
server, and the model field takes only registered names and folders under ``--model-root``."""

from __future__ import annotations

import http.client

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlong.apps.demo.command import DemoApp, DemoSettings, launch_options
from mmlong.apps.demo.guard import allowed_hosts, check_model_field, host_allowed, origin_allowed
from mmlong.apps.demo.page import build_blocks
from mmlong.errors import ConfigError
from tests.test_demo import demo_args, free_port


def request(port: int, host: str, origin: str | None = None, path: str = "/") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Host": host}
    if origin is not None:
        headers["Origin"] = origin
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_launched_demo_refuses_a_rebinding_host_or_a_foreign_origin(tmp_path):
    port = free_port()
    args = demo_args("--port", str(port), "--allowed-host", "demo.lan")
    blocks = build_blocks(DemoApp(args, tmp_path / "out"))
    blocks.launch(**{**launch_options(args), "prevent_thread_lock": True, "quiet": True})
    try:
        assert request(port, f"127.0.0.1:{port}") == 200
        assert request(port, f"localhost:{port}", origin=f"http://localhost:{port}") == 200
        assert request(port, f"demo.lan:{port}") == 200  # a name given with --allowed-host
        assert request(port, f"attacker.example:{port}") == 403  # rebinding: the attacker's name, our address
        assert request(port, f"127.0.0.1:{port}", origin="http://attacker.example") == 403
        assert request(port, f"127.0.0.1:{port}", origin="null") == 403
        assert request(port, f"attacker.example:{port}", path="/gradio_api/info") == 403
        assert request(port, f"attacker.example:{port}", path="/config") == 403
    finally:
        blocks.close()


@pytest.mark.parametrize("host, wildcard, ok", [
    ("127.0.0.1:7860", False, True), ("[::1]:7860", False, True), ("LOCALHOST", False, True),
    ("evil.example", False, False), ("127.0.0.1.evil.example", False, False), ("", False, False),
    (None, False, False), ("192.168.1.5:7860", False, False), ("192.168.1.5:7860", True, True),
    ("evil.example:7860", True, False),
])
def test_host_header_rules(host, wildcard, ok):
    assert host_allowed(host, allowed_hosts("0.0.0.0" if wildcard else "127.0.0.1", ()), wildcard) is ok


@settings(max_examples=100, deadline=None)
@given(name=st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True), port=st.integers(1, 65535))
def test_no_other_name_passes_for_a_loopback_demo(name, port):
    allowed = allowed_hosts("127.0.0.1", ())
    expected = name in ("localhost", "127.0.0.1")
    assert host_allowed(f"{name}:{port}", allowed, False) is expected
    assert origin_allowed(f"http://{name}:{port}", allowed, False) is expected


def test_the_model_field_takes_registered_names_and_folders_under_the_root(tmp_path):
    root = tmp_path / "models"
    (root / "qwen").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    assert check_model_field("socratic", None) == "socratic"
    assert check_model_field("qwen", str(root)) == str(root / "qwen")
    refused = [str(tmp_path / "secret"), "../secret", str(tmp_path / "nothing"), "/etc", "", "qwen/../../secret"]
    for value in refused:
        with pytest.raises(ConfigError) as err:
            check_model_field(value, str(root))
        assert "registered model" in str(err.value) and str(tmp_path / "secret") not in str(err.value)
    with pytest.raises(ConfigError, match="no checkpoint folder"):  # a hub id is a missing folder under the root
        check_model_field("Qwen/Qwen2-VL-2B-Instruct", str(root))
    messages = set()
    for value in (str(tmp_path / "secret"), str(tmp_path / "nothing")):  # an existing folder and a missing one
        with pytest.raises(ConfigError) as err:
            check_model_field(value, None)
        messages.add(str(err.value))
    assert len(messages) == 1  # the page learns nothing about which folders exist


def test_the_demo_refuses_a_hub_id_or_outside_folder_from_the_page(tmp_path):
    app = DemoApp(demo_args(), tmp_path / "out")
    for value in ("Qwen/Qwen2-VL-2B-Instruct", str(tmp_path), "/etc"):
        with pytest.raises(ConfigError, match="registered model"):
            app.config_for(DemoSettings(model=value))
    assert app.config_for(DemoSettings(model="socratic")).model.family == "socratic"
