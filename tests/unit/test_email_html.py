"""Links found in email HTML by the standard library's parser."""

from models.email_html import links


def test_links_with_positions_and_emptiness() -> None:
    html = (
        "<html><body>\n"
        "  <a href=\"https://a.example.com\">A</a> <A HREF='#'>top</A>\n"
        '<a name="anchor">x</a><area href="" /><a href>bare</a>\n'
        "<!-- <a href=''>commented out</a> --><script>var s = '<a href=\"\">';</script>\n"
        '<a href="{{ context.unsubscribeUrl }}">stop</a>'
    )
    found = links(html)
    assert [(link.href, link.has_href, link.line, link.column, link.empty) for link in found] == [
        ("https://a.example.com", True, 2, 3, False),
        ("#", True, 2, 41, True),
        (None, False, 3, 1, False),
        ("", True, 3, 23, True),
        (None, True, 3, 39, True),
        ("{{ context.unsubscribeUrl }}", True, 5, 1, False),
    ]


def test_broken_html_is_read_leniently() -> None:
    assert [link.href for link in links('<a href="x"<p><a href=')] == ["x"]
    assert links("<a href=") == []  # an unfinished tag at the end is no link
    assert [link.href for link in links('<<<>>>&&&<a href="z" href="w">')] == ["z"]  # first href wins
