"""The explorer's memory stays bounded over many page loads: a destroyed session releases its page."""

import gc
import warnings

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.server.contexts import BokehSessionContext
from panel.io.state import set_curdoc

from migsd.explore.app import Explorer, session_page


# Panel, building documents outside a running server, leaves an event loop (and its sockets) per document
# unclosed; they are collected here, so that their ResourceWarnings never land in whichever test runs next
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def collect_panel_leftovers():
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def explorer(model, tmp_path_factory):
    return Explorer.load(model, save_dir=tmp_path_factory.mktemp("saved"), ensemble=False)


def load_and_close(explorer, number):
    """One page load as the server serves it, then the session's end as Bokeh ends it (its destroy hooks)."""
    before = set(explorer.open_pages)
    doc = Document()
    with set_curdoc(doc):
        session_page(explorer, "status_quo").server_doc(doc)
    (page,) = explorer.open_pages - before
    context = BokehSessionContext(f"session-{number}", None, doc)
    # what Bokeh's DocumentLifecycleHandler does when the server discards a session
    callbacks, doc.session_destroyed_callbacks = doc.session_destroyed_callbacks, set()
    for callback in callbacks:
        callback(context)
    return page


def test_pages_of_destroyed_sessions_are_released(explorer):
    pn.extension(notifications=False)
    pages = [load_and_close(explorer, n) for n in range(3)]
    assert explorer.open_pages == set(), "the explorer still holds pages of sessions that ended"
    for page in pages:
        assert page._watchers == []
        assert not any(calls(widget, page) for widget in [*page.sliders.values(), page.phase, page.picker]), \
            "a closed page's widgets still call it"


def calls(widget, page) -> bool:
    """Whether any watcher of ``widget`` calls a method of ``page``."""
    return any(getattr(w.fn, "__self__", None) is page
               for by_what in widget.param.watchers.values() for watchers in by_what.values() for w in watchers)


def test_a_page_whose_session_lives_is_kept_and_watched(explorer):
    before = set(explorer.open_pages)
    doc = Document()
    with set_curdoc(doc):
        session_page(explorer, "status_quo")
    (page,) = explorer.open_pages - before
    assert calls(page.picker, page) and any(calls(s, page) for s in page.sliders.values())
    page.close()
