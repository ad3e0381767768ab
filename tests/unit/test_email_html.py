"""Links found in email HTML by the standard library's parser."""

from models.campaigns.email_html import PREHEADER_STYLE, links, with_preheader


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


def test_the_preheader_is_a_hidden_span_first_in_the_body() -> None:
    html = '<html>\n<head><title>x</title></head>\r\n<BODY class="a">\n<p>Hi</p></body></html>'
    out = with_preheader(html, "  Sale & <more>  ")
    span = f'<span class="preheader" style="{PREHEADER_STYLE}">Sale &amp; &lt;more&gt;</span>'
    assert out == html.replace('<BODY class="a">', f'<BODY class="a">{span}')
    assert "display:none" in PREHEADER_STYLE
    assert (
        with_preheader("<p>Hi</p>", "pre") == f'<span class="preheader" style="{PREHEADER_STYLE}">pre</span><p>Hi</p>'
    )
    assert with_preheader("<p>Hi</p>", " ") == "<p>Hi</p>"  # no preheader: the body is left alone
    assert with_preheader(None, "pre") is None
