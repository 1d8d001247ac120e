"""site_src/hooks/pyscript_pages.py: the worker config and the tags a PyScript page gets."""

from __future__ import annotations

import json
import zipfile
from types import ModuleType, SimpleNamespace

import pytest

from _hooks import load_hook
from _require import REPO_ROOT

PAGE = "<html>\n<head>\n<meta charset=\"utf-8\">\n<title>t</title>\n</head>\n<body>\n<p>x</p>\n</body>\n</html>"


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    return load_hook("pyscript_pages.py")


def _page(url: str, meta: dict) -> SimpleNamespace:
    return SimpleNamespace(url=url, meta=meta, file=SimpleNamespace(src_uri="x.md"))


def _config(tmp_path=None) -> SimpleNamespace:
    return SimpleNamespace(config_file_path=str(REPO_ROOT / "mkdocs.yml"), site_dir=str(tmp_path or ""))


def test_config_points_at_vendored_pyodide_and_unpacks_one_archive_into_the_cwd(hook):
    cfg = hook.pyscript_config()
    assert cfg["interpreter"] == "../assets/vendor/pyodide/pyodide.mjs"  # relative to py/pyscript.json
    assert cfg["files"] == {"./app.zip": "./*"}  # PyScript unpacks a "/*" destination (py/app.zip)


@pytest.mark.parametrize("url,up", [("bench/", "../"), ("lessons/tokens/", "../../"), ("", "")])
def test_tags_use_urls_relative_to_the_page(hook, url, up):
    head, body = hook.head_and_body_tags(url, "pyscript_app/browser/bench_page.py")
    assert head.startswith(f'<script src="{up}mini-coi.js" scope="./"></script>')
    assert f'<meta name="tabgpt-root" content="{up or "./"}">' in head
    # PyScript is imported only once the page is cross-origin isolated (after mini-coi's reload)
    assert f'if (self.crossOriginIsolated) import(new URL("{up}assets/vendor/pyscript/core.js"' in head
    assert body == (f'<script type="py" worker src="{up}py/pyscript_app/browser/bench_page.py" '
                    f'config="{up}py/pyscript.json"></script>\n')


def test_opted_in_page_gets_mini_coi_first_in_head_and_the_worker_last_in_body(hook):
    out = hook.on_post_page(PAGE, _page("bench/", {"pyscript_worker": "pyscript_app/browser/bench_page.py"}), _config())
    head = out.split("<head>", 1)[1]
    assert head.lstrip().startswith('<script src="../mini-coi.js"')
    assert out.index('type="py" worker') < out.index("</body>") and out.index("<p>x</p>") < out.index('type="py"')


def test_other_pages_are_untouched_and_a_missing_script_is_an_error(hook):
    assert hook.on_post_page(PAGE, _page("", {}), _config()) == PAGE
    with pytest.raises(hook.PluginError):
        hook.on_post_page(PAGE, _page("x/", {"pyscript_worker": "pyscript_app/nope.py"}), _config())


def test_post_build_writes_the_config_and_the_archive_of_the_manifest(hook, tmp_path):
    files = ["pyscript_app/rng.py", "shaders/matmul.wgsl"]
    for path in files:
        (tmp_path / "py" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "py" / path).write_bytes((REPO_ROOT / path).read_bytes())
    (tmp_path / "py/manifest.json").write_text(json.dumps({"files": files}), encoding="utf-8")
    hook.on_post_build(_config(tmp_path))
    written = json.loads((tmp_path / "py/pyscript.json").read_text(encoding="utf-8"))
    assert written["files"] == {"./app.zip": "./*"}
    with zipfile.ZipFile(tmp_path / "py/app.zip") as zf:
        assert zf.namelist() == files
        for path in files:
            assert zf.read(path) == (tmp_path / "py" / path).read_bytes()


def test_the_archive_is_the_same_bytes_for_the_same_sources(hook, tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    hook.write_archive(tmp_path, ["a.py"], tmp_path / "one.zip")
    (tmp_path / "a.py").touch()  # a newer mtime must not change the archive
    hook.write_archive(tmp_path, ["a.py"], tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
