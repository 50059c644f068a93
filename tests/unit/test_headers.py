from core.headers import end_to_end


def test_hop_by_hop_and_connection_named_headers_are_removed() -> None:
    got = end_to_end([("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"), ("Transfer-Encoding", "chunked"),
                      ("Keep-Alive", "5"), ("X-Keep", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Host", "h")])
    assert got == [("X-Keep", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
