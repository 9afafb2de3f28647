from flask import Blueprint

bp = Blueprint("newsletters", __name__, url_prefix="/lettres")
