"""Every variable sits in the view of its sector."""

from migsd.sketch import equation_groups, place_missing, read_views

SECTORS = [
    "Population", "Labour", "Sentiment", "Policy", "Rights and bargaining",
    "Destination choice", "IOM redistribution", "Southern development",
]


def test_the_model_has_one_view_per_sector_and_every_variable_in_its_own(model):
    text = model.path.read_text(encoding="utf-8")
    views = read_views(text)
    groups = equation_groups(text)
    assert list(dict.fromkeys(views.values())) == SECTORS
    for name, group in groups.items():
        if group == "Control":
            continue
        assert views.get(name) == group, f"'{name}' of group {group} is in view {views.get(name)!r}"
    assert place_missing(text) == (text, [])


def test_place_missing_adds_a_new_variable_to_its_group_view(model):
    text = model.path.read_text(encoding="utf-8")
    anchor = "youth share[Region]=\n\tNative Population[Region,Young] / population[Region]\n\t~\tDmnl\n\t~\tShare of young.\n\t|\n\n"
    edited = text.replace("working age residents[Region]=", anchor + "working age residents[Region]=", 1)
    updated, placed = place_missing(edited)
    assert placed == ["youth share"]
    assert read_views(updated)["youth share"] == "Population"
    assert read_views(updated)["Restrictiveness"] == "Policy"
