"""Hypothesis strategies shared by the validation and API tests."""

from hypothesis import strategies as st

SCHEMES = st.sampled_from(["http", "https", "HTTP", "HtTpS", "ftp", "javascript", "data", "", "http "])
SEPARATORS = st.sampled_from(["://", ":", ":/", "//", ":///", "://@"])
USERINFO = st.sampled_from(["", "", "", "user@", "user:pass@", ":@", "@", "a@b@"])
HOSTS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9-]{1,12}(\.[a-zA-Z0-9-]{1,12}){0,3}\.?", fullmatch=True),
    st.sampled_from(
        [
            "bücher.example",
            "BÜCHER.example",
            "[::1]",
            "[2001:db8::1]",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "127.0.0.1",
            "ex\u3002ample\u3002",
            "a\xa0b",
            "a\xa8b",
            "exa..mple",
            "ß.de",
            "",
        ]
    ),
    st.text(max_size=15),
)
PORTS = st.one_of(
    st.just(""),
    st.integers(min_value=0, max_value=70000).map(lambda port: f":{port}"),
    st.sampled_from([":80", ":443", ":0080", ":", ":abc", ":+80"]),
    st.text(max_size=6).map(lambda text: ":" + text),
)
PATHS = st.one_of(st.just(""), st.text(max_size=30).map(lambda text: "/" + text))
QUERIES = st.one_of(
    st.just(""),
    st.text(max_size=20).map(lambda text: "?" + text),
    # Long enough to sit on either side of URL_MAX_LENGTH.
    st.integers(min_value=1990, max_value=2060).map(lambda length: "?" + "q" * length),
)
FRAGMENTS = st.one_of(st.just(""), st.text(max_size=10).map(lambda text: "#" + text))
PADDING = st.sampled_from(["", "", " ", "\t", "\n"])


@st.composite
def url_like(draw):
    """Strings assembled from URL parts, mostly plausible, often subtly broken."""
    parts = [PADDING, SCHEMES, SEPARATORS, USERINFO, HOSTS, PORTS, PATHS, QUERIES, FRAGMENTS, PADDING]
    return "".join(draw(part) for part in parts)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

# Text as it arrives in a request header (Werkzeug decodes them as latin-1),
# with the characters that would break a click's line format made frequent.
HEADER_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from("\t\n\r "), st.characters(max_codepoint=0xFF)), max_size=600
)
