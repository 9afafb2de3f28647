from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from service.accounts.permissions import staff_required
from service.dashboard.services import home_figures
from service.db import Session, utcnow

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@staff_required
def home() -> ResponseReturnValue:
    return render_template("dashboard/home.html", figures=home_figures(Session()), now=utcnow())
