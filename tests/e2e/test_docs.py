"""`/docs` renders in a real browser with nothing from another origin (no CDN: a machine
without internet gets the same page)."""

from tests.browser import page_of
from tests.stack import Stack


def test_docs_render_the_api_from_our_own_origin(stack: Stack) -> None:
    with page_of(stack.base) as browsed:
        page = browsed.page
        page.goto(f"{stack.base}/docs")
        # Swagger UI has fetched /openapi.json and drawn an operation of ours.
        page.locator(".opblock-summary-path", has_text="/oauth2/token").first.wait_for(
            timeout=15_000
        )
        assert page.title() == "credbroker provisioning API: documentation"
        assert browsed.foreign == []


def test_docs_assets_are_served_with_their_types(stack: Stack) -> None:
    html = stack.http.get(f"{stack.base}/docs").text
    assert "cdn." not in html and "https://" not in html
    for path, kind in (
        ("/static/vendor/swagger-ui-dist/swagger-ui-bundle.js", "javascript"),
        ("/static/vendor/swagger-ui-dist/swagger-ui.css", "text/css"),
    ):
        assert path in html
        answer = stack.http.get(f"{stack.base}{path}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert stack.http.get(f"{stack.base}/redoc").status_code == 404
