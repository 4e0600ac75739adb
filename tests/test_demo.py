"""The demo job end to end on a small slice of bbc-news (the full run is `make demo`)."""

import pytest

pytestmark = pytest.mark.real


def test_demo_writes_report_with_every_section(tmp_path, exports_home, monkeypatch):
    from repspace.demo import run_demo

    monkeypatch.setenv("REPSPACE_HOME", exports_home)  # the backends section reuses the session's exported backends

    path = run_demo(tmp_path / "demo", limit=300, progress=False)
    html = path.read_text()
    for title in ("Spaces", "Encoder backends", "Retrieval: title -&gt; body", "How small can it be: retrieval vs dimension",
                  "Classification, label retrieval, clustering", "Similarity between spaces", "Compatibility",
                  "How small can it be</h2>", "Alignment between models (title view)", "Alignment between models (body view)",
                  "Upgrade: compatible training and query-side adapters", "Upgrade a live collection without losing", "Learning without labels"):
        assert title in html, title
    assert html.count("data:image/png;base64,") >= 5
    # a second run reuses the encoded spaces
    assert run_demo(tmp_path / "demo", limit=300, progress=False) == path
