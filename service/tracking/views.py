"""Tracked links and the open pixel: public, answered in microseconds.

A click token leads only to the URL stored for its issue at that position;
anything else (tampered, unknown, another issue's link, extra parameters) is the
404 page, never a redirect. The pixel is always a GIF, recorded only when its
token is ours.
"""

from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, abort, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import Headers

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

from service.accounts.permissions import public
from service.extensions import limiter
from service.tracking.ingest import PIXEL, Request, Tracker

bp = Blueprint("tracking", __name__)


@limiter.request_filter
def _tracking_hit() -> bool:
    """These endpoints limit floods themselves (ingest.IP_LIMIT, DELIVERY_LIMIT: answered,
    not recorded); Flask-Limiter's per-request work would only cost them time."""
    return (request.endpoint or "").startswith("tracking.")


def tracker(app: Flask) -> Tracker:
    found: Tracker | None = app.extensions.get("tracking")
    if found is None:
        found = app.extensions["tracking"] = Tracker(app.extensions["lettrine_config"])
    return found


def _request() -> Request:
    environ = request.environ  # what request.headers and remote_addr read, without their cost
    return Request(
        environ["REQUEST_METHOD"], environ.get("HTTP_USER_AGENT"), environ.get("REMOTE_ADDR")
    )


class _Redirect(Response):
    """A 302 to a stored link's Location, which ``ingest._location`` has already made a
    valid URI: Werkzeug's own pass over it (iri_to_uri, about a tenth of a click's
    cost) would change nothing."""

    def __init__(self, location: str) -> None:
        super().__init__(status=302, headers={"Referrer-Policy": "no-referrer"})
        self._location = location

    def get_wsgi_headers(self, environ: "WSGIEnvironment") -> Headers:
        headers = super().get_wsgi_headers(environ)
        headers["Location"] = self._location
        return headers


# merge_slashes=False: "/c//host" is a 404 here, not a redirect to a cleaned-up path.
@bp.route("/c/<token>", merge_slashes=False)
@public
def click(token: str) -> ResponseReturnValue:
    # A tracked URL never has a query string: ?url=, ?next= and the like are not ours.
    if request.query_string:
        abort(404)
    target = tracker(current_app).click(token, _request())
    if target is None:
        abort(404)
    return _Redirect(target)


@bp.route("/o/<token>.gif", merge_slashes=False)
@public
def pixel(token: str) -> ResponseReturnValue:
    tracker(current_app).open(token, _request())
    return Response(PIXEL, content_type="image/gif", headers={"Cache-Control": "no-store"})
