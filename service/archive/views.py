"""Public archive pages and feeds: no login, nothing personal (see ``services``).

The issue page is the email's own HTML document, whose layout lives in inline
styles and ``<style>`` elements, which the app's strict CSP (``style-src 'self'``)
would block. That response alone gets ``ISSUE_POLICY``: inline styles are allowed
and nothing else is. No script of any kind runs (``default-src 'none'`` and no
``script-src``: no ``<script>``, no ``on…=`` attribute, no ``javascript:`` URL), no
form can post (``form-action 'none'``), no frame, object or ``<base>``, nobody may
frame the page; images come from our origin or https only. The HTML itself is our
renderer's output, escaped by Jinja and sanitised by nh3, and carries no secret
that injected CSS could read. (A CSP ``sandbox`` was tried too: Chromium, as
driven by the browser tests, then logs « Blocked script execution » on every
click although the page has no script, for no gain over ``default-src 'none'``.)
An iframe was not an option for a page whose URL is mailed to every reader: a
``srcdoc`` frame inherits its parent's CSP (inline styles blocked again), and a
framed email scrolls inside the page on phones.
"""

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session as OrmSession

from service.accounts.permissions import public
from service.archive import feeds, services
from service.config import Config
from service.db import Session
from service.issues.models import Issue
from service.newsletters.models import Newsletter
from service.public.branding import current_brand

bp = Blueprint("archive", __name__, url_prefix="/archives")

ISSUE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Shared caches may keep pages and feeds a few minutes: they change when an issue is sent.
PUBLIC_CACHE = 300


def _config() -> Config:
    config: Config = current_app.extensions["lettrine_config"]
    return config


def _absolute(endpoint: str, **values: Any) -> str:
    """URLs written into pages and feeds use the configured public origin."""
    return _config().base_url + url_for(endpoint, **values)


def _cache(name: str) -> Any:
    """This app's cache of rendered pages or feeds (one per process)."""
    return current_app.extensions.setdefault(name, services.RenderCache())


def _not_found() -> ResponseReturnValue:
    # One answer for « does not exist » and « not public »: nothing to learn from it.
    return render_template("archive/not_found.html", brand=current_brand(Session())), 404


def _cached(
    response: Response, modified: Any, *, max_age: int = PUBLIC_CACHE, etag: str | None = None
) -> Response:
    """ETag (from the body unless given), Last-Modified, then 304 when they match."""
    response.set_etag(etag or services.etag(response.get_data()))
    if modified is not None:
        response.last_modified = modified
    if max_age:
        response.cache_control.public = True
        response.cache_control.max_age = max_age
    else:  # pages wearing the layout: every use revalidates (cheap with the ETag)
        response.cache_control.no_cache = True
    response.make_conditional(request)  # turns it into a 304 in place when it matches
    return response


@bp.app_context_processor
def _archive_link() -> dict[str, Any]:
    """``archive_url(issue)`` for the back office: the public page, or None."""

    def archive_url(issue: Issue) -> str | None:
        return url_for("archive.issue", issue_id=issue.id) if services.is_public(issue) else None

    return {"archive_url": archive_url}


@bp.route("")
@public
def index() -> ResponseReturnValue:
    """Every newsletter with published issues; straight to its issues when there is one."""
    archived = services.archived_newsletters(Session())
    if len(archived) == 1:
        return redirect(url_for("archive.newsletter", slug=archived[0].newsletter.slug))
    body = render_template("archive/index.html", brand=current_brand(Session()), archived=archived)
    latest = max((item.latest for item in archived), default=None)
    return _cached(Response(body, mimetype="text/html"), latest, max_age=0)


@bp.route("/lettres/<slug>")
@public
def newsletter(slug: str) -> ResponseReturnValue:
    session = Session()
    found = services.newsletter_by_slug(session, slug)
    page_number = request.args.get("page", 1, type=int) or 1
    page = services.issues_page(session, found.id, page_number) if found is not None else None
    if found is None or page is None:
        return _not_found()
    body = render_template(
        "archive/newsletter.html",
        brand=current_brand(session),
        newsletter=found,
        page=page,
        published_at=services.published_at,
        several=len(services.archived_newsletters(session)) > 1,
    )
    return _cached(
        Response(body, mimetype="text/html"),
        services.latest_publication(session, found.id),
        max_age=0,
    )


@bp.route("/<int:issue_id>")
@public
def issue(issue_id: int) -> ResponseReturnValue:
    """The « Voir en ligne » target of every email: the issue as readers got it."""
    found = services.public_issue(Session(), issue_id)
    if found is None:
        return _not_found()
    cache: services.RenderCache[str] = _cache("archive_pages")
    version, body = services.issue_html(
        _config(),
        found,
        cache,
        archive_url=_absolute("archive.newsletter", slug=found.newsletter.slug),
        subscribe_url=_absolute("public.subscribe"),
        icon_url=url_for("static", filename="favicon.svg"),
    )
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = ISSUE_POLICY
    return _cached(response, services.published_at(found), etag=version)


def _newsletter_or_none(slug: str) -> Newsletter | None:
    return services.newsletter_by_slug(Session(), slug)


@bp.route("/lettres/<slug>/atom.xml")
@public
def atom(slug: str) -> ResponseReturnValue:
    session = Session()
    found = _newsletter_or_none(slug)
    if found is None:
        return _not_found()
    config = _config()
    updated = services.latest_publication(session, found.id) or found.created_at
    version = services.feed_version(session, config, found, "atom")
    cache: services.RenderCache[bytes] = _cache("archive_feeds")
    body = cache.get(version)
    if body is None:
        body = _atom(config, found, session, updated)
        cache.put(version, body)
    response = Response(body, content_type="application/atom+xml; charset=utf-8")
    return _cached(response, updated, etag=version)


def _atom(config: Config, found: Newsletter, session: OrmSession, updated: dt.datetime) -> bytes:
    feed = feeds.Feed(
        newsletter_id=found.id,
        created=found.created_at,
        title=found.name,
        subtitle=f"Les numéros de « {found.name} », du plus récent au plus ancien.",
        author=found.sender_name,
        self_url=_absolute("archive.atom", slug=found.slug),
        page_url=_absolute("archive.newsletter", slug=found.slug),
        updated=updated,
    )
    entries = [
        feeds.FeedEntry(
            id=item.id,
            title=f"n° {item.number} — {item.title}",
            summary=item.preheader or item.subject,
            url=_absolute("archive.issue", issue_id=item.id),
            created=item.created_at,
            published=services.published_at(item),
        )
        for item in services.latest_issues(session, found.id)
    ]
    return feeds.atom(config.base_url, feed, entries)


@bp.route("/lettres/<slug>/agenda.ics")
@public
def agenda(slug: str) -> ResponseReturnValue:
    session = Session()
    found = _newsletter_or_none(slug)
    if found is None:
        return _not_found()
    updated = services.latest_publication(session, found.id) or found.created_at
    version = services.feed_version(session, _config(), found, "agenda")
    cache: services.RenderCache[bytes] = _cache("archive_feeds")
    body = cache.get(version)
    if body is None:
        body = feeds.agenda(
            services.agenda_events(session, found.id),
            name=f"Agenda — {found.name}",
            stamp=updated,
        )
        cache.put(version, body)
    response = Response(body, content_type="text/calendar; charset=utf-8")
    response.headers["Content-Disposition"] = 'inline; filename="agenda.ics"'
    return _cached(response, updated, etag=version)
