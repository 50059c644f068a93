from core.headers import HOP_BY_HOP, end_to_end, pairs_to_records, records_to_pairs


def test_hop_by_hop_and_connection_named_headers_are_removed() -> None:
    got = end_to_end([("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"), ("Transfer-Encoding", "chunked"),
                      ("Keep-Alive", "5"), ("X-Keep", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Host", "h")])
    assert got == [("X-Keep", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_connection_tokens_are_matched_case_insensitively_and_trimmed() -> None:
    got = end_to_end([("connection", " X-A ,x-b"), ("x-a", "1"), ("X-B", "2"), ("X-C", "3")])
    assert got == [("X-C", "3")]


def test_every_hop_by_hop_name_is_dropped_whatever_its_case() -> None:
    headers = [(name.upper(), "v") for name in HOP_BY_HOP] + [("Authorization", "Bearer t"), ("Content-Type", "a/b")]
    assert end_to_end(headers) == [("Authorization", "Bearer t"), ("Content-Type", "a/b")]


def test_repeated_names_and_order_are_kept() -> None:
    headers = [("Accept", "a"), ("X-Trace", "1"), ("Accept", "b")]
    assert end_to_end(headers) == headers


def test_the_message_shape_converts_to_pairs_and_back() -> None:
    pairs = [("X-One", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    records = pairs_to_records(pairs)
    assert records == [{"name": "X-One", "value": "1"}, {"name": "Set-Cookie", "value": "a=1"},
                       {"name": "Set-Cookie", "value": "b=2"}]
    assert records_to_pairs(records) == pairs
    # Names of str subclasses (aiohttp's istr) become plain str: they must pickle to the sandbox.
    from multidict import istr

    assert type(pairs_to_records([(istr("X-I"), "v")])[0]["name"]) is str
