"""The API's OpenAPI 3.1 description, kept by hand beside the views it describes.

Kept by hand because the API's validation lives in ``links.service`` (the
dashboard and CLI share it), not in request schemas a generator could read.
It cannot drift unnoticed: ``tests/test_openapi.py`` checks that every
``/api`` route is described with its methods and nothing else is, and
schemathesis sends generated requests to a live app and checks every answer
against these schemas.
"""

STRING_OR_NULL = {"type": ["string", "null"]}
SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "from next_cursor"}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema):
    return {"content": {"application/json": {"schema": schema}}}


def answer(description, schema=None):
    return {"description": description, **(json_content(schema) if schema else {})}


def errors(*codes):
    meanings = {
        400: "invalid input",
        401: "no valid token",
        404: "no such link (or not yours)",
        409: "slug taken",
        412: "the link changed since it was read (If-Match)",
        413: "request body too large",
        415: "not JSON",
    }
    return {str(code): answer(meanings[code], ref("Error")) for code in (401, 413, *codes)}


def query(name, schema, description=""):
    return {"name": name, "in": "query", "schema": schema, "description": description}


WRITABLE = {
    "url": {"type": "string", "maxLength": 2048, "description": "http or https target"},
    "slug": {"type": "string", "maxLength": 64, "description": "letters, digits, - and _"},
    "title": {**STRING_OR_NULL, "maxLength": 200},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 20},
    "redirect_code": {"type": ["integer", "null"], "enum": [301, 302, 307, 308, None]},
    "enabled": {"type": "boolean"},
    "expires_at": {**STRING_OR_NULL, "description": "ISO 8601; without an offset, UTC"},
    "max_clicks": {"type": ["integer", "null"], "minimum": 1, "maximum": 10**12},
}
LINK = {
    "type": "object",
    "required": ["slug", "url", "short_url", "tags", "enabled", "clicks", "bot_clicks", "created_at"],
    "properties": {
        **WRITABLE,
        "short_url": {"type": "string"},
        "redirect_code": {"type": "integer", "enum": [301, 302, 307, 308]},
        "aliases": {"type": "array", "items": {"type": "string"}},
        "clicks": {"type": "integer"},
        "bot_clicks": {"type": "integer"},
        "refused": {"type": "integer", "description": "visits answered 410 (expired or exhausted)"},
        "last_click_at": STRING_OR_NULL,
        "created_at": {"type": "string"},
    },
}
BUCKET = {"type": "string", "enum": ["hour", "day", "week", "month"]}
RANGE_STATS = {
    "from": {"type": "string"},
    "to": {"type": "string"},
    "tz": {"type": "string"},
    "bucket": BUCKET,
    "range_clicks": {"type": "integer"},
    "range_bot_clicks": {"type": "integer"},
    "previous": ref("Comparison"),
    "series": {"type": "array", "items": ref("SeriesPoint")},
    "referrers": {"type": "array", "items": ref("Ranked")},
    "countries": {"type": "array", "items": ref("Ranked")},
    "devices": {"type": "array", "items": ref("Ranked")},
    "os": {"type": "array", "items": ref("Ranked")},
    "browsers": {"type": "array", "items": ref("Ranked")},
    "bots": {"type": "array", "items": ref("Ranked")},
}
SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "details": {}},
    },
    "Link": LINK,
    "LinkInput": {
        "type": "object",
        "required": ["url"],
        "properties": WRITABLE,
        "additionalProperties": False,
    },
    "LinkPatch": {"type": "object", "properties": WRITABLE, "additionalProperties": False},
    "LinkPage": {
        "type": "object",
        "required": ["links", "next_cursor"],
        "properties": {"links": {"type": "array", "items": ref("Link")}, "next_cursor": STRING_OR_NULL},
    },
    "Click": {
        "type": "object",
        "properties": {
            "at": {"type": "string"},
            "referrer": STRING_OR_NULL,
            "user_agent": STRING_OR_NULL,
            "ip": {**STRING_OR_NULL, "description": "anonymised: IPv4 /24, IPv6 /48"},
            "bot": {"type": "boolean"},
        },
    },
    "ClickPage": {
        "type": "object",
        "required": ["clicks", "next_cursor"],
        "properties": {"clicks": {"type": "array", "items": ref("Click")}, "next_cursor": STRING_OR_NULL},
    },
    "SeriesPoint": {
        "type": "object",
        "properties": {
            "start": {"type": "string"},
            "clicks": {"type": "integer"},
            "bot_clicks": {"type": "integer"},
        },
    },
    "Ranked": {"type": "object", "properties": {"clicks": {"type": "integer"}}},
    "Comparison": {
        "type": "object",
        "description": "the period just before, of the same length",
        "properties": {
            "from": {"type": "string"},
            "to": {"type": "string"},
            "clicks": {"type": "integer"},
            "bot_clicks": {"type": "integer"},
            "change_percent": {
                "type": ["number", "null"],
                "description": "null when the previous period had none",
            },
        },
    },
    "LinkStats": {"type": "object", "properties": {"slug": {"type": "string"}, **RANGE_STATS}},
    "Stats": {
        "type": "object",
        "properties": {
            "links": {"type": "integer"},
            "clicks": {"type": "integer"},
            "bot_clicks": {"type": "integer"},
            "refused": {"type": "integer"},
            **RANGE_STATS,
        },
    },
    "History": {
        "type": "object",
        "properties": {
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string"},
                        "by": STRING_OR_NULL,
                        "changes": {"type": "object"},
                    },
                },
            }
        },
    },
    "BulkResults": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "string", "enum": ["created", "existing", "error"]},
                        "link": ref("Link"),
                        "error": {"type": "string"},
                    },
                },
            }
        },
    },
    "PageView": {
        "type": "object",
        "required": ["url", "response_time_ms"],
        "properties": {
            "url": {"type": "string", "maxLength": 2048},
            "response_time_ms": {"type": "number", "minimum": 0, "maximum": 3_600_000},
            "ts": {"type": ["string", "number"], "description": "ISO 8601 or Unix seconds"},
        },
        "additionalProperties": False,
    },
}
RANGE_PARAMETERS = [
    query(
        "range",
        {"type": "string", "enum": ["today", "7d", "30d", "month", "12mo", "custom"]},
        "a preset period in tz (custom: from and to are dates, both included); overrides the default",
    ),
    query(
        "from",
        {"type": "string"},
        "ISO 8601 date or date-time (in tz unless it has an offset); default 30 days before to",
    ),
    query("to", {"type": "string"}, "ISO 8601 date or date-time, exclusive; default now"),
    query("tz", {"type": "string"}, "IANA time zone of days, hours and naive times (default UTC)"),
    query("bucket", BUCKET, "default: day, or the preset's"),
    query("top", {"type": "integer", "minimum": 1, "maximum": 100}, "rows in each table"),
]

PATHS = {
    "/api/links": {
        "get": {
            "summary": "List links (newest first by default), a page at a time",
            "parameters": [
                query("q", {"type": "string"}, "search in slug, target and title"),
                query("tag", {"type": "string"}),
                query("enabled", {"type": "string", "enum": ["true", "false"]}),
                query(
                    "sort",
                    {"type": "string", "enum": ["created", "-created", "slug", "-slug", "clicks", "-clicks"]},
                ),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                CURSOR,
            ],
            "responses": {"200": answer("a page of links", ref("LinkPage")), **errors(400)},
        },
        "post": {
            "summary": "Create a link (the same URL without a slug returns the existing link, 200)",
            "requestBody": {"required": True, **json_content(ref("LinkInput"))},
            "responses": {
                "201": answer("created", ref("Link")),
                "200": answer("this URL's existing link", ref("Link")),
                **errors(400, 409),
            },
        },
    },
    "/api/links/bulk": {
        "post": {
            "summary": "Create up to 1000 links; a result per item",
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "oneOf": [
                            {"type": "array", "items": ref("LinkInput"), "maxItems": 1000},
                            {
                                "type": "object",
                                "properties": {"links": {"type": "array", "items": ref("LinkInput")}},
                            },
                        ]
                    }
                ),
            },
            "responses": {"200": answer("one result per item, in order", ref("BulkResults")), **errors(400)},
        }
    },
    "/api/links/{slug}": {
        "parameters": [SLUG],
        "get": {
            "summary": "A link with its counts (ETag for If-Match)",
            "responses": {"200": answer("the link", ref("Link")), **errors(404)},
        },
        "patch": {
            "summary": "Change a link; clicks stay. If-Match: the ETag of your read",
            "parameters": [{"name": "If-Match", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {"required": True, **json_content(ref("LinkPatch"))},
            "responses": {"200": answer("the changed link", ref("Link")), **errors(400, 404, 409, 412)},
        },
        "delete": {
            "summary": "Delete a link and its clicks",
            "responses": {"204": answer("deleted"), **errors(404)},
        },
    },
    "/api/links/{slug}/aliases/{alias}": {
        "parameters": [SLUG, {"name": "alias", "in": "path", "required": True, "schema": {"type": "string"}}],
        "delete": {
            "summary": "Stop an old slug redirecting",
            "responses": {"204": answer("removed"), **errors(404)},
        },
    },
    "/api/links/{slug}/history": {
        "parameters": [SLUG],
        "get": {
            "summary": "Who changed what, newest first",
            "parameters": [query("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
            "responses": {"200": answer("changes", ref("History")), **errors(400, 404)},
        },
    },
    "/api/links/{slug}/clicks": {
        "parameters": [SLUG],
        "get": {
            "summary": "The link's clicks, newest first, a page at a time; or all of them as CSV",
            "parameters": [
                query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                CURSOR,
                query(
                    "format",
                    {"type": "string", "enum": ["json", "csv"]},
                    "csv: every click, oldest first, streamed",
                ),
            ],
            "responses": {
                "200": {
                    "description": "a page of clicks (JSON), or every click (CSV)",
                    "content": {
                        "application/json": {"schema": ref("ClickPage")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **errors(400, 404),
            },
        },
    },
    "/api/links/{slug}/stats": {
        "parameters": [SLUG],
        "get": {
            "summary": "Clicks over time, against the period before, and the tables (referrers, countries, devices, OS, browsers, bots)",
            "parameters": RANGE_PARAMETERS,
            "responses": {"200": answer("statistics", ref("LinkStats")), **errors(400, 404)},
        },
    },
    "/api/links/{slug}/qr": {
        "parameters": [SLUG],
        "get": {
            "summary": "QR code of the short URL",
            "parameters": [
                query("format", {"type": "string", "enum": ["svg", "png"]}),
                query("size", {"type": "integer", "minimum": 1, "maximum": 40}, "pixels per module"),
            ],
            "responses": {
                "200": {
                    "description": "the image",
                    "content": {
                        "image/svg+xml": {"schema": {"type": "string"}},
                        "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
                    },
                },
                **errors(400, 404),
            },
        },
    },
    "/api/stats": {
        "get": {
            "summary": "Totals over your links, and their statistics over a range",
            "parameters": RANGE_PARAMETERS,
            "responses": {"200": answer("statistics", ref("Stats")), **errors(400)},
        }
    },
    "/api/pageviews": {
        "post": {
            "summary": "Report page views (one or up to 1000) for the slow-page report",
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "oneOf": [
                            ref("PageView"),
                            {"type": "array", "items": ref("PageView"), "minItems": 1, "maxItems": 1000},
                        ]
                    }
                ),
            },
            "responses": {
                "202": answer(
                    "accepted", {"type": "object", "properties": {"accepted": {"type": "integer"}}}
                ),
                "503": answer("the spool cannot take them now; retry", ref("Error")),
                **errors(400),
            },
        }
    },
}


def spec(server_url=None):
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Clickboard API",
            "version": "1",
            "description": "Short links and their clicks. Authenticate with `Authorization: Bearer <token>` "
            "(`flask tokens create NAME`, or the dashboard's Tokens page). Errors are "
            '`{"error": "...", "details": ...}` with a 4xx status.',
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
