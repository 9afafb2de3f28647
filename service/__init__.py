"""Lettrine: the Flask application factory."""

from typing import Any

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import service.models  # noqa: F401 - every model registered before the first query
from service.accounts.views import bp as accounts_bp
from service.archive.views import bp as archive_bp
from service.assets.views import bp as assets_bp
from service.audience.import_views import bp as imports_bp
from service.audience.views import bp as audience_bp
from service.config import Config, load_config
from service.dashboard.views import bp as dashboard_bp
from service.db import Session, bind_session, make_engine
from service.delivery.views import bp as delivery_hooks_bp
from service.delivery.views import reports_bp as bounce_reports_bp
from service.extensions import babel, csrf, limiter, login_manager
from service.i18n import select_locale
from service.issues.views import bp as issues_bp
from service.newsletters.views import bp as newsletters_bp
from service.outbox.views import bp as outbox_bp
from service.public.views import bp as public_bp
from service.stats.views import bp as stats_bp
from service.taskqueue import celery_init_app
from service.tracking.views import bp as tracking_bp

# Strict by default; the few pages that show caught e-mails loosen it for
# themselves only (see service/outbox/views.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


# Main menu: (endpoint, label, roles that see it). Entries whose endpoint does not
# exist yet are skipped, so a domain package adds itself by registering the view.
NAV_ITEMS = (
    ("issues.index", _l("Numéros"), ("admin", "publisher", "editor", "analyst")),
    ("audience.index", _l("Abonnés"), ("admin", "publisher", "editor")),
    ("bounces.index", _l("Retours"), ("admin", "publisher")),
    ("stats.index", _l("Statistiques"), ("admin", "publisher", "editor", "analyst")),
    ("newsletters.index", _l("Lettres"), ("admin",)),
    ("accounts.users", _l("Utilisateurs"), ("admin",)),
)


def create_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    app = Flask(__name__, instance_path=str(config.instance_path))
    app.config.update(config.flask_settings())
    app.extensions["lettrine_config"] = config

    engine = make_engine(config.database_url)
    app.extensions["engine"] = engine
    bind_session(engine)

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        Session.remove()

    if config.proxy_count:
        # Behind N trusted reverse proxies: real client address and scheme (rate limits, URLs).
        n = config.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.config["RATELIMIT_STORAGE_URI"] = config.redis_url or "memory://"
    limiter.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = None  # the login page explains itself

    celery_init_app(app, config)
    _register_blueprints(app)
    _security_headers(app)
    _error_pages(app)

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {
            "current_locale": select_locale(),
            "outbox_enabled": config.outbox_enabled,
            "nav_items": NAV_ITEMS,
            "nav_endpoints": app.view_functions,
        }

    return app


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(accounts_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(outbox_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(issues_bp)
    app.register_blueprint(newsletters_bp)
    app.register_blueprint(assets_bp)
    app.register_blueprint(audience_bp)
    app.register_blueprint(delivery_hooks_bp)
    app.register_blueprint(bounce_reports_bp)
    app.register_blueprint(imports_bp)
    app.register_blueprint(stats_bp)
    app.register_blueprint(archive_bp)
    app.register_blueprint(tracking_bp)


def _security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _error_pages(app: Flask) -> None:
    messages = {
        400: (_l("Requête invalide"), _l("La requête n'a pas pu être comprise.")),
        403: (_l("Accès refusé"), _l("Votre rôle ne permet pas d'ouvrir cette page.")),
        404: (_l("Page introuvable"), _l("Cette page n'existe pas ou plus.")),
        405: (_l("Méthode non permise"), _l("Cette action n'est pas possible ainsi.")),
        413: (_l("Fichier trop volumineux"), _l("Le fichier envoyé dépasse la taille autorisée.")),
        429: (_l("Trop de tentatives"), _l("Trop de tentatives : patientez quelques minutes.")),
        500: (
            _l("Erreur interne"),
            _l("Une erreur inattendue s'est produite ; elle a été consignée. Réessayez plus tard."),
        ),
    }

    @app.errorhandler(CSRFError)
    def _csrf(_error: CSRFError) -> tuple[str, int]:
        title = _("Formulaire expiré")
        message = _(
            "Le formulaire a expiré ou n'a pas été envoyé depuis Lettrine. "
            "Rechargez la page et recommencez : rien n'a été enregistré."
        )
        return render_template("errors/error.html", title=title, message=message), 400

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Any:
        code = error.code or 500
        if code >= 500:
            Session.rollback()  # the page itself reads the database (current user)
        if code not in messages:
            return error
        title, message = messages[code]
        return render_template("errors/error.html", title=title, message=message), code
