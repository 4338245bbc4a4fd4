"""The SDXorg test-models (Vensim and XMILE) through the batched engine, against the generated list in
docs/conformance.md.

The list is written by ``migsd conformance --write docs/conformance.md``; each model
listed as passing must still pass (the count only grows), and every outcome must be
what the list says, so the list can never go stale. Skipped where the test-models
are absent.
"""

from pathlib import Path

import pytest

from migsd.engine.conformance import DEFAULT_ROOT, check, find_models, model_format, read_report
from migsd.paths import REPO_ROOT

LISTED = read_report((REPO_ROOT / "docs" / "conformance.md").read_text(encoding="utf-8"))
MODELS = find_models(DEFAULT_ROOT) if DEFAULT_ROOT.is_dir() else []


@pytest.mark.skipif(not MODELS, reason="the SDXorg test-models are not beside the project")
@pytest.mark.parametrize("path", MODELS, ids=[f"{p.parent.name}-{p.suffix[1:]}" for p in MODELS])
def test_test_model_outcome_is_as_listed(path):
    outcome = check(path, DEFAULT_ROOT)
    listed = LISTED.get(outcome.model)
    assert listed is not None, f"{outcome.model} is not in docs/conformance.md; regenerate it"
    if listed == "passes":
        assert outcome.status == "passes", f"{outcome.model} passed before and now {outcome.status}: {outcome.detail}"
    assert outcome.status == listed, (
        f"{outcome.model} now {outcome.status} (listed: {listed}); regenerate docs/conformance.md: {outcome.detail}"
    )


@pytest.mark.skipif(not MODELS, reason="the SDXorg test-models are not beside the project")
def test_every_listed_model_still_exists():
    present = {check_label(p) for p in MODELS}
    assert set(LISTED) <= present, f"listed but absent: {sorted(set(LISTED) - present)}"


def check_label(path: Path) -> str:
    return path.relative_to(DEFAULT_ROOT).as_posix()


@pytest.mark.parametrize(("kind", "at_least"), [("Vensim", 100), ("XMILE", 48)])
def test_the_list_has_passing_models_of_each_format(kind, at_least):
    assert sum(1 for model, status in LISTED.items() if status == "passes" and model_format(model) == kind) >= at_least


@pytest.mark.skipif(not MODELS, reason="the SDXorg test-models are not beside the project")
def test_both_formats_are_found():
    kinds = {model_format(p.name) for p in MODELS}
    assert kinds == {"Vensim", "XMILE"}
