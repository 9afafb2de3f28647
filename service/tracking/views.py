"""Tracked links and the open pixel: public, answered in microseconds.

A click token leads only to the URL stored for its issue at that position;
anything else (tampered, unknown, another issue's link, extra parameters) is the
404 page, never a redirect. The pixel is always a GIF, recorded only when its
token is ours.
"""

from flask import Blueprint, Flask, Response, abort, current_app, request
from flask.typing import ResponseReturnValue

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
        config, engine = app.extensions["lettrine_config"], app.extensions["engine"]
        found = app.extensions["tracking"] = Tracker(config, engine)
    return found


def _request() -> Request:
    return Request(request.method, request.headers.get("User-Agent"), request.remote_addr)


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
    response = Response(status=302)
    response.headers["Location"] = target
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/o/<token>.gif", merge_slashes=False)
@public
def pixel(token: str) -> ResponseReturnValue:
    tracker(current_app).open(token, _request())
    return Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store"})
