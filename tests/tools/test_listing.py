"""tools/listing.py: the first few items of a list inside a refusal, then how many more."""

from tools.listing import first_few


def test_a_long_list_shows_five_items_json_escaped_then_how_many_more() -> None:
    assert first_few(["a", "b\u200b", "c", "d", "e", "f", "g"]) == '"a", "b\\u200b", "c", "d", "e" and 2 more'


def test_a_short_list_is_shown_whole_in_the_chosen_form() -> None:
    assert first_few(["No", "Yes"], repr) == "'No', 'Yes'" and first_few([]) == ""
